from service_kit.logs import configure_logging
from service_kit.tracing import configure_tracing
from service_kit.web import serve
from storage_service.app import create_app
from storage_service.config import Settings

settings = Settings()
configure_logging("storage_service", settings.log_level, settings.log_format)
configure_tracing("storage_service")
serve(create_app(settings), settings)
