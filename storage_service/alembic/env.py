from service_kit.alembic_env import run_migrations
from storage_service.models import Base

run_migrations(Base.metadata)
