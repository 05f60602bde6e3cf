from resource_processor.app import create_app
from resource_processor.config import Settings
from service_kit.logs import configure_logging
from service_kit.tracing import configure_tracing
from service_kit.web import serve

settings = Settings()
configure_logging("resource_processor", settings.log_level, settings.log_format)
configure_tracing("resource_processor")
serve(create_app(settings), settings)
