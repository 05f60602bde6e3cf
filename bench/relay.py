"""A byte relay in front of the S3 server: the cost of one extra TCP hop with nothing else in it.

`socat -b 1048576` (Debian's package, installed when missing) moves 1 MiB buffers between two
sockets; with its default 8 KiB buffer the hop alone costs 0.4 of a PUT, which would flatter the
service. What the service does beyond this hop is the service's own cost.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

from devstack.apt import ensure_commands
from devstack.testing.stack import free_port

BUFFER_BYTES = 1024 * 1024


@contextlib.contextmanager
def relay(target_url: str) -> Iterator[str]:
    """Yields the relay's URL (same scheme as `target_url`), until the block ends."""
    ensure_commands({"socat": "socat"})
    target = urlsplit(target_url)
    port = free_port()
    process = subprocess.Popen(
        [
            "socat",
            "-b",
            str(BUFFER_BYTES),
            f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr",
            f"TCP:{target.hostname}:{target.port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_listening(port, process)
        yield f"{target.scheme}://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"socat exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"socat did not listen on {port} within {timeout} s")
