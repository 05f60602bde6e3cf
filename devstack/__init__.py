"""The harness around the services, none of it in their images or distribution, by job:

- `runner/`      `make run`: supervisord with one program per service (`python -m devstack`),
                 and `make ps|stop|start|...` (`python -m devstack.runner.control`)
- `containers/`  `make compose-up|down` (`python -m devstack.containers.compose`), the container
                 engine, the stand-in images, podman's Docker API for testcontainers
- `testing/`     what the tests and benchmarks run on: the stack as processes, the sandbox,
                 the MP3 writer, the TCP fault proxy, the OTLP receiver; and `make chaos`
                 (`python -m devstack.testing.chaos`)
- `ops/`         operations tools: `make reconcile`, `make reset`
- `demo/`        `make demo` (`python -m devstack.demo`)
- here           LocalStack on the host (`localstack`), the gateway's route table (`gateway`),
                 Debian packages on demand (`apt`): what several of the above share
"""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
