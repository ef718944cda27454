# Two commands do everything on a fresh machine with Python 3.11 and Java 17:
#   make demo   run the whole job end to end on the embedded (local) backend
#   make test   lint and run the whole test suite
# Both bootstrap .venv from the pinned requirements.lock, then install this project into it
# (editable), so `churn`, the DAGs and the tests import it without any PYTHONPATH.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.8
STAMP := $(VENV)/.installed
export CHURN_ROOT ?= $(CURDIR)/.churn
# Under PYTHONDONTWRITEBYTECODE=1 (as in many CI images) every Airflow, task and Spark driver
# process compiles Airflow's sources again. These commands let Python cache what it compiles,
# in the venv and the project's folders (__pycache__ is ignored by git): compiling the whole
# venv at install instead made a newcomer's clone-to-summary slower (docs/performance.md).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: compose-env postgres venv java browser demo test test-fast lint bench bench-scale zip compile lock clean airflow-up airflow-down deploy-composer

venv: $(STAMP)

# uv pip sync removes what the lock does not list, this project included: install it after.
$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required: install python3.11 and retry."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet uv==$(UV_VERSION)
	$(VENV)/bin/uv pip sync --quiet --python $(PY) requirements.lock
	$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps --no-build-isolation -e .
	touch $@

java:
	@command -v java >/dev/null || [ -x "$$JAVA_HOME/bin/java" ] || { \
		echo "Spark needs Java 17: install a JDK 17 (e.g. apt-get install openjdk-17-jdk-headless) and put java on PATH or set JAVA_HOME."; \
		exit 1; }

# $(call debian_package,<command it provides>,<package>,<what needs it>): install if missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
debian_package = command -v $(1) >/dev/null || { \
	echo "Installing Debian's $(2) for $(3)"; \
	{ $(SUDO) apt-get install -y -q $(2) || { $(SUDO) apt-get update -q && \
		$(SUDO) apt-get install -y -q $(2); }; } >/dev/null || { \
	echo "$(3) needs Debian's $(2) package: apt-get install $(2)"; exit 1; }; }

# The test of the running Airflow drives the UI in Chromium, on the compose topology over
# PostgreSQL (tests/dags/test_running_airflow.py).
browser:
	@$(call debian_package,chromium,chromium,the browser test of the Airflow UI)
postgres:
	@$(call debian_package,$(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb)),postgresql,the compose-stack test)

demo: venv java
	$(PY) -m churn_tools.demo

# Two workers, whole files each, shared out by tests/conftest.py: the stack tests start first,
# beside the CPU-bound files; the in-process Spark tests share one worker and one JVM
# (docs/performance.md).
test: venv java browser postgres lint
	$(VENV)/bin/pytest -q -n 2 --dist loadfile --durations=10

# The inner loop: everything but the end-to-end runs (marked slow), in under two minutes.
test-fast: venv java
	$(VENV)/bin/pytest -q -n 2 --dist loadfile -m "not slow" --durations=5

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: venv java
	$(PY) -m tests.bench

# How each job's time grows with its input (about an hour): docs/performance.md.
bench-scale: venv java
	$(PY) -m tests.bench_scale

zip: venv
	$(PY) spark_jobs/package_zip.py --output dist/churn_ml.zip

compile: venv
	$(PY) -m pipeline.compile

# A local Airflow with its UI (http://localhost:8080, password in .airflow/), no Docker needed.
# It listens on this machine only (AIRFLOW_BIND=0.0.0.0 to serve others); its files are 0600.
AIRFLOW_BIND ?= 127.0.0.1
AIRFLOW_ENV := AIRFLOW_HOME=$(CURDIR)/.airflow AIRFLOW__API__HOST=$(AIRFLOW_BIND) AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags \
	AIRFLOW__CORE__PLUGINS_FOLDER=$(CURDIR)/plugins AIRFLOW__CORE__LOAD_EXAMPLES=False \
	AIRFLOW__OPENLINEAGE__TRANSPORT='{"type": "file", "log_file_path": "$(CHURN_ROOT)/lineage/events.jsonl", "append": true}' \
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH

airflow-up: venv java
	@mkdir -p -m 700 .airflow
	@chmod -f 600 .airflow/*.generated || true  # one an earlier Airflow wrote readable
	$(AIRFLOW_ENV) $(PY) -m churn_tools.airflow_setup
	umask 077; $(AIRFLOW_ENV) nohup airflow standalone > .airflow/standalone.log 2>&1 & echo $$! > .airflow/standalone.pid
	@echo "Airflow starting: http://$(AIRFLOW_BIND):8080 (log: .airflow/standalone.log; user admin, password in .airflow/simple_auth_manager_passwords.json.generated)"

# airflow standalone orphans its children on SIGTERM: stop them first, then the parent.
airflow-down:
	@if [ -f .airflow/standalone.pid ]; then \
		pid=$$(cat .airflow/standalone.pid); \
		for child in $$(pgrep -P $$pid); do pkill -TERM -P $$child; kill $$child; done; \
		kill $$pid 2>/dev/null; rm -f .airflow/standalone.pid; echo "Airflow stopped"; \
	else echo "no Airflow started by make airflow-up"; fi

# .env for docker-compose.yaml, written once: your uid and the secrets every service shares.
COMPOSE_SECRETS := import os, secrets; from cryptography.fernet import Fernet; \
	print(f"AIRFLOW_UID={os.getuid()}"); \
	print(f"AIRFLOW__API_AUTH__JWT_SECRET={secrets.token_urlsafe(32)}"); \
	print(f"AIRFLOW__API__SECRET_KEY={secrets.token_urlsafe(32)}"); \
	print(f"AIRFLOW__CORE__FERNET_KEY={Fernet.generate_key().decode()}")
compose-env: venv
	@mkdir -p .churn
	@if [ -f .env ]; then echo ".env exists: kept"; else (umask 077; $(PY) -c '$(COMPOSE_SECRETS)' > .env) && echo "wrote .env (0600)"; fi

# Deploy to Cloud Composer with your own gcloud credentials (docs/gcp.md), e.g.
#   make deploy-composer DEPLOY_ARGS="--environment ENV --location REGION --project P \
#     --data-bucket B --model-bucket B --code-bucket B --dry-run"
deploy-composer: venv
	$(PY) -m churn_tools.composer_deploy $(DEPLOY_ARGS)

# Re-resolve the pinned set after editing requirements.txt.
lock: venv
	$(VENV)/bin/uv pip compile requirements.txt --python-version 3.11 --generate-hashes --quiet -o requirements.lock

clean:
	rm -rf $(VENV) dist .churn .airflow test-output
