# The one way to install, run, test, lint, benchmark and demo the platform.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# uv installs from uv.lock: every transitive version, each with its hashes. It lives in a venv
# of its own, so the project's venv holds exactly what the lock says.
UV_VERSION := 0.13.10
UV := .tools/uv/bin/uv
# The system's certificate store, as pip uses, rather than uv's own bundle.
export UV_SYSTEM_CERTS := 1

.PHONY: install run test check lint format localstack bench demo images replay-dlq migrate-queues reset clean \
	ps stop start restart kill pause unpause logs down reconcile chaos compose-up compose-down lock mutation

$(UV):
	$(PYTHON) -m venv .tools/uv
	.tools/uv/bin/pip install -q uv==$(UV_VERSION)

# Re-install whenever the dependencies change. --locked: exactly uv.lock, and an error if the
# lock no longer matches pyproject.toml (run `make lock`).
$(INSTALLED): pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --extra dev --python $(PYTHON)
	touch $@

# After a change to pyproject.toml's dependencies, or to move the transitive ones to their
# newest releases within its pins.
lock: $(UV)
	$(UV) lock --upgrade --python $(PYTHON)

localstack: $(INSTALLED)
	$(PY) -m devstack.localstack install

install: $(INSTALLED) localstack

# A supervisor: a service that dies or freezes leaves the others running.
# RESTART=on-failure restarts a crashed service with backoff, as compose's policy does.
# REPLICAS=2 runs a second Resource Service behind the gateway (127.0.0.1:8000).
run: install
	@$(if $(REPLICAS),RUN_REPLICAS=$(REPLICAS)) $(PY) -m devstack $(if $(RESTART),--restart $(RESTART))

# From another terminal, on one service of a running `make run` (compose's names and meanings):
# make ps; make stop|start|restart|kill|pause|unpause|logs SERVICE=storage-service; make down
ps down: $(INSTALLED)
	@$(PY) -m devstack.runner.control $@

stop start restart kill pause unpause logs: $(INSTALLED)
	@$(PY) -m devstack.runner.control $@ $(SERVICE)

# mypy: strict over every package and the tests (pyproject.toml's [tool.mypy]).
lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/codespell

format: $(INSTALLED)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The quick tier, before each commit: lint and the tests that need no server (about a minute).
UNIT_TESTS := tests/service_kit/unit tests/resource_service/unit tests/resource_processor/unit \
	tests/devstack/unit tests/static
check: lint
	$(VENV)/bin/pytest -q -p no:logging $(UNIT_TESTS)

# The whole suite (the compose walkthrough in containers included), then the Storage and Song
# integration tests again through testcontainers, against podman's Docker API where no Docker
# engine answers: the suite's container branch runs too.
test: install lint
	$(VENV)/bin/pytest
	$(PY) -m devstack.containers.docker_api $(VENV)/bin/pytest -p no:cacheprovider tests/storage_service tests/song_service

# Mutation testing of the fault-tolerance modules against the quick tier; each module's share of
# mutants killed (about 3 min; `mutants/` holds the last run, for `mutmut show`).
mutation: $(INSTALLED)
	$(PY) -m devstack.testing.mutation

bench: install
	$(PY) -m bench

demo: install
	$(PY) -m devstack.demo

# Move the messages of a dead-letter queue back to their queue: make replay-dlq QUEUE=resource.uploaded
replay-dlq: $(INSTALLED)
	$(PY) -m service_kit.replay $(QUEUE)

# Move the messages of queues an older version declared into today's declarations (stop the
# older version's services first; the new ones can run).
migrate-queues: $(INSTALLED)
	$(PY) -m service_kit.migrate_queues

# Jepsen-style: seeded real faults while clients upload and delete, then every invariant checked.
SEED ?= 1
DURATION ?= 120
chaos: install
	@$(PY) -m devstack.testing.chaos --seed $(SEED) --duration $(DURATION)

# Clear the platform's data (databases, queues, stored objects) for a clean start; after make down.
reset: $(INSTALLED)
	@$(PY) -m devstack.ops.reset

# What the stores hold against what the rows say; FIX=1 repairs what is safe.
reconcile: $(INSTALLED)
	@$(PY) -m devstack.ops.reconcile $(if $(FIX),--fix)

# The compose stack in containers, detached and waited on: Docker where an engine answers,
# otherwise podman (installed from Debian when missing), with stand-in images where no registry
# answers. VOLUMES=1 removes the volumes too.
compose-up: $(INSTALLED)
	@$(PY) -m devstack.containers.compose up
compose-down: $(INSTALLED)
	@$(PY) -m devstack.containers.compose down $(if $(VOLUMES),--volumes)

images:
	images/render.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
