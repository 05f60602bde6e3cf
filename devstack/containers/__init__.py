"""`make compose-up|down` (`compose`) on Docker or podman (`engine`), the stand-in images where
no registry answers (`standins`), podman's Docker API for testcontainers (`docker_api`)."""
