# Two commands do everything on a fresh machine with Python 3.11 and Java 17:
#   make demo   run the whole job end to end on the embedded (local) backend
#   make test   lint and run the whole test suite
# Both bootstrap .venv from the pinned requirements.lock.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.8
STAMP := $(VENV)/.installed
export CHURN_ROOT ?= $(CURDIR)/.churn
export PYTHONPATH := $(CURDIR):$(CURDIR)/spark_jobs:$(CURDIR)/plugins

.PHONY: venv java browser demo test lint bench bench-scale zip compile lock clean airflow-up airflow-down deploy-composer

venv: $(STAMP)

$(STAMP): requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required: install python3.11 and retry."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet uv==$(UV_VERSION)
	$(VENV)/bin/uv pip sync --quiet --python $(PY) requirements.lock
	touch $@

java:
	@command -v java >/dev/null || [ -x "$$JAVA_HOME/bin/java" ] || { \
		echo "Spark needs Java 17: install a JDK 17 (e.g. apt-get install openjdk-17-jdk-headless) and put java on PATH or set JAVA_HOME."; \
		exit 1; }

# Debian's Chromium, for the browser test of the Airflow UI (tests/dags/test_airflow_ui.py).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null || { \
		echo "Installing Debian's chromium for the browser test of the Airflow UI"; \
		{ $(SUDO) apt-get install -y -q chromium || { $(SUDO) apt-get update -q && \
			$(SUDO) apt-get install -y -q chromium; }; } >/dev/null || { \
		echo "The UI test needs Chromium: install Debian's chromium package (apt-get install chromium)."; \
		exit 1; }; }

demo: venv java
	$(PY) -m churn_airflow.demo

test: venv java browser lint
	$(VENV)/bin/pytest -q --durations=10

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
AIRFLOW_ENV := AIRFLOW_HOME=$(CURDIR)/.airflow AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags \
	AIRFLOW__CORE__PLUGINS_FOLDER=$(CURDIR)/plugins AIRFLOW__CORE__LOAD_EXAMPLES=False \
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH

airflow-up: venv java
	@mkdir -p .airflow
	$(AIRFLOW_ENV) $(PY) -m churn_airflow.airflow_setup
	$(AIRFLOW_ENV) nohup airflow standalone > .airflow/standalone.log 2>&1 & echo $$! > .airflow/standalone.pid
	@echo "Airflow starting: http://localhost:8080 (log: .airflow/standalone.log; user admin, password in .airflow/simple_auth_manager_passwords.json.generated)"

# airflow standalone orphans its children on SIGTERM: stop them first, then the parent.
airflow-down:
	@if [ -f .airflow/standalone.pid ]; then \
		pid=$$(cat .airflow/standalone.pid); \
		for child in $$(pgrep -P $$pid); do pkill -TERM -P $$child; kill $$child; done; \
		kill $$pid 2>/dev/null; rm -f .airflow/standalone.pid; echo "Airflow stopped"; \
	else echo "no Airflow started by make airflow-up"; fi

# Deploy to Cloud Composer with your own gcloud credentials (docs/gcp.md), e.g.
#   make deploy-composer DEPLOY_ARGS="--environment ENV --location REGION --project P \
#     --data-bucket B --model-bucket B --code-bucket B --dry-run"
deploy-composer: venv
	$(PY) -m churn_airflow.composer_deploy $(DEPLOY_ARGS)

# Re-resolve the pinned set after editing requirements.txt.
lock: venv
	$(VENV)/bin/uv pip compile requirements.txt --python-version 3.11 --generate-hashes --quiet -o requirements.lock

clean:
	rm -rf $(VENV) dist .churn .airflow test-output
