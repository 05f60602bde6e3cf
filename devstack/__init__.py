"""Developer tooling: start LocalStack on the host and run the whole stack (`make run`)."""
