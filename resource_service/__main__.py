from resource_service.app import create_app
from resource_service.config import Settings
from service_kit.logs import configure_logging
from service_kit.tracing import configure_tracing
from service_kit.web import serve

settings = Settings()
configure_logging("resource_service", settings.log_level, settings.log_format)
configure_tracing("resource_service")
serve(create_app(settings), settings)
