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
    "CHURN_SCORING_SERVICE_ACCOUNT": "churn-scoring@acme-churn.iam.gserviceaccount.com",
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
    assert env.scoring_service_account == GIVEN["CHURN_SCORING_SERVICE_ACCOUNT"]
    assert env.artifact_root == "gs://acme-churn-models"


def test_a_missing_setting_stops_the_plan(gcp):
    gcp.delenv("CHURN_CODE_BUCKET")
    gcp.delenv("CHURN_SERVICE_ACCOUNT")
    with pytest.raises(ValueError) as refused:
        settings.environment()
    assert str(refused.value) == (
        "the gcp backend needs the settings CHURN_CODE_BUCKET, CHURN_SERVICE_ACCOUNT (env vars "
        "of the Composer environment, as the deploy sets them)"
    )


@pytest.mark.parametrize("name", settings.ENV_ONLY)
def test_a_variable_cannot_change_what_code_runs_or_who_runs_it(gcp, name):
    """Composer gives new users the Op role, which edits Variables: the code bucket, image,
    runtime and identities come from the environment's variables alone."""
    gcp.setenv(f"AIRFLOW_VAR_CHURN_{name.upper()}", "attacker-choice")  # a Variable
    given = GIVEN.get(f"CHURN_{name.upper()}", settings.DEFAULTS.get(name, ""))
    assert settings.value(name) == given
    assert settings.template(name) == given


def test_a_variable_still_moves_where_data_lives(gcp):
    gcp.setenv("AIRFLOW_VAR_CHURN_DATA_BUCKET", "acme-churn-data-eu")
    assert settings.value("data_bucket") == "acme-churn-data-eu"
    assert settings.template("data_bucket") == (
        "{{ var.value.get('churn_data_bucket', 'acme-churn-data') }}"
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
