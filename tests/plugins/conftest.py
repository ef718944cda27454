"""Airflow configuration for the plugin tests: set before anything imports airflow.

pytest imports this conftest before collecting the test modules of this folder, so the
environment below is in place when a test module (or the code it tests) imports airflow.
``setdefault`` keeps a value that the root conftest or the caller already chose.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(REPO / "plugins"))
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

import pytest  # noqa: E402

# Subprocesses (the registry CLI, local batches) import the same packages as the tests.
SUBPROCESS_PYTHONPATH = os.pathsep.join(str(REPO / p) for p in ("", "spark_jobs", "plugins"))


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SUBPROCESS_PYTHONPATH}


@pytest.fixture(autouse=True)
def _default_backend(monkeypatch):
    """Every test starts on the local backend unless it sets CHURN_BACKEND itself."""
    monkeypatch.delenv("CHURN_BACKEND", raising=False)
