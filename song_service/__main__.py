from service_kit.logs import configure_logging
from service_kit.tracing import configure_tracing
from service_kit.web import serve
from song_service.app import create_app
from song_service.config import Settings

settings = Settings()
configure_logging("song_service", settings.log_level, settings.log_format)
configure_tracing("song_service")
serve(create_app(settings), settings)
