"""`make run`: S3 if none answers, then every service in the foreground; Ctrl-C stops them all."""

from __future__ import annotations

import signal
import sys
import time

from devstack import localstack
from devstack.processes import ServiceProcess

# Start order follows the dependencies: the Resource Service asks Storage where files live.
SERVICES = [
    ("storage_service", 8082),
    ("song_service", 8081),
    ("resource_service", 8080),
    ("resource_processor", 8083),
]


def main() -> None:
    started_localstack = localstack.start()
    print(f"S3 (LocalStack) ready on {localstack.endpoint()}", flush=True)
    services = [ServiceProcess(package, port, env={}) for package, port in SERVICES]
    stopping = False

    def stop_all(*_: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        for service in reversed(services):
            service.stop()
        if started_localstack is not None:
            localstack.stop_process(started_localstack)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        for service in services:
            service.start().wait_healthy()
            print(f"{service.package:<20} {service.url}  (docs: {service.url}/docs)", flush=True)
        print("All services are up. Ctrl-C stops them all.", flush=True)
        while all(s.process is not None and s.process.poll() is None for s in services):
            time.sleep(0.5)
        crashed = [s.package for s in services if s.process and s.process.poll() is not None]
        print(f"Stopped because {', '.join(crashed)} exited.", file=sys.stderr, flush=True)
        sys.exit(1)
    except KeyboardInterrupt:
        print("\nStopping...", flush=True)
    finally:
        stop_all()


if __name__ == "__main__":
    main()
