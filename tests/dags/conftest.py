"""Fixtures of the DAG tests (Airflow itself is configured in the root conftest)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from churn_tools import airflow_setup

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """An initialised metadata DB (SQLite) in the session's AIRFLOW_HOME, with our pool."""
    airflow_setup.setup(os.environ.copy())
    return os.environ["AIRFLOW_HOME"]
