"""The one way to start a service as a process: `python -m <package>`, then wait for /health.

`make run` and the end-to-end and fault tests both use it, so what the tests kill and restart is
exactly what a person runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from devstack import REPO


@dataclass
class ServiceProcess:
    package: str
    port: int
    env: dict[str, str]
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _log: IO[bytes] | None = field(default=None, init=False)

    @property
    def running(self) -> subprocess.Popen[bytes]:
        """The process, once `start` made it."""
        if self.process is None:
            raise RuntimeError(f"{self.package} was never started")
        return self.process

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServiceProcess:
        env = {**os.environ, **self.env, "PORT": str(self.port)}
        if self.log_path is not None:
            self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.package],
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT if self._log else None,
        )
        return self

    def health_status(self) -> int | None:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as reply:
                return int(reply.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return None

    def wait_healthy(self, timeout: float = 60.0) -> ServiceProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.package} exited with {self.process.returncode}; log: {self.log_path}"
                )
            if self.health_status() == 200:
                return self
            time.sleep(0.1)
        raise TimeoutError(f"{self.package} not healthy on {self.url} after {timeout:.0f} s")

    def signal(self, signum: int) -> None:
        """Deliver a real fault (SIGKILL, SIGSTOP, SIGCONT) or a polite SIGTERM."""
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGCONT)  # a frozen process cannot handle SIGTERM
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self._log is not None:
            self._log.close()

    def restart(self) -> ServiceProcess:
        self.stop()
        if self.process is not None and self.process.poll() is None:
            self.process.wait()
        return self.start()
