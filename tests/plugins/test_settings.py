"""A deployment's settings become an Environment at plan time, or stop the run in one sentence."""

from __future__ import annotations

import pytest

from churn_airflow import settings
from churn_core import runtime

GIVEN = {
    "CHURN_PROJECT": "acme-churn",
    "CHURN_DATA_BUCKET": "acme-churn-data",
    "CHURN_MODEL_BUCKET": "acme-churn-models",
    "CHURN_CODE_BUCKET": "acme-churn-code",
    "CHURN_SERVICE_ACCOUNT": "churn-runtime@acme-churn.iam.gserviceaccount.com",
}


@pytest.fixture
def gcp(monkeypatch):
    monkeypatch.setenv("CHURN_BACKEND", "gcp")
    for name in settings.GCP_SETTINGS:
        monkeypatch.delenv(f"CHURN_{name.upper()}", raising=False)
    for name, value in GIVEN.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_the_env_vars_make_the_environment_with_the_default_runtime(gcp):
    env = settings.environment()
    assert (env.project, env.region, env.runtime_version) == ("acme-churn", "us-central1", "3.0")
    assert env.runtime_version == runtime.DEFAULT
    assert env.service_account == GIVEN["CHURN_SERVICE_ACCOUNT"]
    assert env.artifact_root == "gs://acme-churn-models"


def test_a_missing_setting_stops_the_plan(gcp):
    gcp.delenv("CHURN_CODE_BUCKET")
    gcp.delenv("CHURN_SERVICE_ACCOUNT")
    with pytest.raises(ValueError) as refused:
        settings.environment()
    assert str(refused.value) == (
        "the gcp backend needs the Airflow Variables churn_code_bucket, churn_service_account "
        "(or the env vars CHURN_CODE_BUCKET, CHURN_SERVICE_ACCOUNT)"
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CHURN_RUNTIME_VERSION", "2.3", "Dataproc runtime 2.3 ships Spark 3.5"),
        ("CHURN_RUNTIME_VERSION", "latest", "unknown Dataproc runtime version 'latest'"),
        (
            "CHURN_SPARK_HISTORY_SERVER",
            "projects/acme-churn/regions/us-central1/clusters/phs",
            "Dataproc runtime 3.0 does not support a Persistent History Server",
        ),
    ],
)
def test_a_setting_the_runtime_cannot_take_stops_the_plan(gcp, name, value, message):
    gcp.setenv(name, value)
    with pytest.raises(ValueError, match=message) as refused:
        settings.environment()
    assert "\n" not in str(refused.value)


def test_the_local_backend_runs_the_default_runtime(monkeypatch, tmp_path):
    monkeypatch.setenv("CHURN_ROOT", str(tmp_path))
    assert settings.environment().runtime_version == runtime.DEFAULT
