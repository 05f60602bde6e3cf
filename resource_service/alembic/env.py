from resource_service.models import Base
from service_kit.alembic_env import run_migrations

run_migrations(Base.metadata)
