"""Where a benchmark run's stacks live: this machine's PostgreSQL, RabbitMQ and S3 (LocalStack,
started when none answers), with fresh databases and vhosts that are removed at the end.

    with BenchEnv(run_dir) as env, env.stack("transfer", processors=0) as stack:
        stack.upload(data)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from devstack import localstack
from devstack.testing.sandbox import Sandbox
from devstack.testing.stack import Stack, start_stack
from service_kit.config import S3Settings
from service_kit.s3 import S3Client, make_s3_client

# Every stack accepts the 200 MB memory benchmark's file.
MAX_UPLOAD_BYTES = 256 * 1024 * 1024


class BenchEnv:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.sandbox = Sandbox("bench")
        self._exit = contextlib.ExitStack()

    def __enter__(self) -> BenchEnv:
        started = localstack.start()  # None when one already answers: then it stays running
        if started is not None:
            self._exit.callback(localstack.stop_process, started)
        self._exit.callback(self.sandbox.close)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._exit.close()

    @property
    def s3_endpoint_url(self) -> str:
        return localstack.endpoint()

    def s3_client(self, endpoint_url: str | None = None) -> S3Client:
        """A client made as the services make theirs, for LocalStack or another endpoint."""
        return make_s3_client(S3Settings(s3_endpoint_url=endpoint_url or self.s3_endpoint_url))

    @contextlib.contextmanager
    def stack(
        self,
        label: str,
        processors: int = 1,
        resource_env: dict[str, str] | None = None,
        processor_env: dict[str, str] | None = None,
        common_env: dict[str, str] | None = None,
    ) -> Iterator[Stack]:
        """A whole platform of its own; every process is stopped (and thawed) when it ends."""
        log_dir = self.run_dir / label
        log_dir.mkdir(parents=True, exist_ok=True)
        stack = start_stack(  # stops what it started if a service never gets healthy
            self.sandbox.database_url,
            self.sandbox.vhost(label)[1],
            self.s3_endpoint_url,
            log_dir,
            processors=processors,
            resource_env={"MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES), **(resource_env or {})},
            processor_env=processor_env,
            common_env=common_env,
        )
        try:
            yield stack
        finally:
            stack.stop()
