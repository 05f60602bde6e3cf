# syntax=docker/dockerfile:1
# The one image recipe for all four services; the build args say which. From the repository root
# (docker-compose.yml passes them for each service):
#   docker build --build-arg PACKAGE=storage_service --build-arg PORT=8082 .
# The official image; where no registry answers, docker/standins/python/compose.yml passes a
# stand-in's tag instead (docs/compose.md).
ARG BASE_IMAGE=python:3.11.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --no-create-home --uid 10001 app
WORKDIR /app

# Dependencies before code: this layer is rebuilt when the lock changes, not on every edit, and
# it is the same for every service, so the four images share it in the cache. uv installs the
# service dependencies exactly as uv.lock pins and hashes them (the dev extra left out), then
# leaves the image. UV_SYSTEM_CERTS: the system's certificate store, as pip uses, not uv's own
# bundle (a network that inspects TLS adds its authority there).
COPY pyproject.toml uv.lock ./
RUN pip install uv==0.13.10 \
    && UV_PROJECT_ENVIRONMENT=/opt/venv UV_SYSTEM_CERTS=1 \
       uv sync --locked --no-install-project --no-cache \
    && pip uninstall -y uv
ENV PATH=/opt/venv/bin:$PATH

# Only the shared package and this service: an import of another service fails here, as it should.
# `python -m` runs from /app, so the packages need no install step. Root owns them; `app` only reads.
ARG PACKAGE
COPY service_kit/ service_kit/
COPY ${PACKAGE}/ ${PACKAGE}/

USER app

# In a container the service must listen on every interface. PORT is the service's default port,
# set here so the healthcheck below and the one in docker-compose.yml can read it.
ARG PORT
ENV HOST=0.0.0.0 \
    PORT=${PORT} \
    SERVICE_PACKAGE=${PACKAGE}
EXPOSE ${PORT}

# slim has no curl; urlopen raises on a refused connection and on 503 (down), so both fail the check.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/health' % os.environ['PORT'], timeout=4)"]

# The shell only expands the package's name: `exec` replaces it, so python is PID 1 and gets
# the signals.
ENTRYPOINT ["/bin/sh", "-c", "exec python -m \"$SERVICE_PACKAGE\""]
