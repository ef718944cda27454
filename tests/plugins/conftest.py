"""Fixtures of the plugin tests (Airflow itself is configured in the root conftest)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """This process's environment: subprocesses import the project installed in the venv."""
    return dict(os.environ)


@pytest.fixture(autouse=True)
def _default_backend(monkeypatch):
    """Every test starts on the local backend unless it sets CHURN_BACKEND itself."""
    monkeypatch.delenv("CHURN_BACKEND", raising=False)


@pytest.fixture(scope="session")
def gcs_emulator():
    """A GCS JSON API server for the session; google-cloud-storage clients talk to it."""
    from tests import gcs_emulator as emulator

    with emulator.serve() as url, pytest.MonkeyPatch.context() as patch:
        patch.setenv("STORAGE_EMULATOR_HOST", url)
        yield url
