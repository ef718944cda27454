"""Run config -> ``parameter_values``, ids, and an offline check against the committed template."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
import yaml

from pipeline.compile import TEMPLATE
from pipeline.params import (
    BATCH_ID,
    JOB_ID,
    Environment,
    Tuning,
    batch_id,
    for_attempt,
    job_id,
    parameter_values,
)

REPO = Path(__file__).resolve().parents[2]
RUN_DATE = dt.date(2026, 11, 29)
GCP_SETTINGS = {
    "container_image": "europe-docker.pkg.dev/churn-prod/spark/churn-ml:1.0",
    "service_account": "churn-batches@churn-prod.iam.gserviceaccount.com",
    "subnetwork_uri": "projects/churn-prod/regions/europe-west1/subnetworks/dataproc",
    "spark_history_server": "projects/churn-prod/regions/europe-west1/clusters/phs",
}


def gcp_env() -> Environment:
    return Environment.gcp(
        "churn-prod", "europe-west1", "churn-data", "churn-models", "churn-code", **GCP_SETTINGS
    )


def test_parameter_values_gcp():
    assert parameter_values(gcp_env(), "20261129", RUN_DATE) == {
        "pipeline_id": "20261129",
        "pipeline_execution_dt": "2026-11-29",
        "training_data_uri": "gs://churn-data/landing/train/dt=2026-11-29",
        "dataset_uri": "bq://churn-prod.customer_churn_ds",
        "artifact_root": "gs://churn-models",
        "code_uri": "gs://churn-code/spark_jobs",
        "python_file_uris": ["gs://churn-code/spark_jobs/churn_ml.zip"],
        "preprocessing_batch_id": "churn-preprocessing-20261129",
        "training_batch_id": "churn-training-20261129",
        "tuning_batch_id": "churn-tuning-20261129",
        "project": "churn-prod",
        "region": "europe-west1",
        "container_image": "europe-docker.pkg.dev/churn-prod/spark/churn-ml:1.0",
        "runtime_version": "2.3",
        "service_account": "churn-batches@churn-prod.iam.gserviceaccount.com",
        "subnetwork_uri": "projects/churn-prod/regions/europe-west1/subnetworks/dataproc",
        "spark_history_server": "projects/churn-prod/regions/europe-west1/clusters/phs",
        "spark_properties": {
            "spark.driver.cores": "4",
            "spark.driver.memory": "12g",
            "spark.executor.cores": "4",
            "spark.executor.memory": "12g",
            "spark.dynamicAllocation.maxExecutors": "10",
        },
        "aupr_threshold": 0.5,
        "max_drop_fraction": 0.05,
        "max_depth_grid": "5,10,15",
        "max_bins_grid": "24,32,40",
        "num_trees_grid": "25,30,35",
        "folds": 5,
        "seed": 42,
    }


def test_parameter_values_local(tmp_path, monkeypatch):
    monkeypatch.delenv("CHURN_SPARK_DRIVER_MEMORY", raising=False)
    tuning = Tuning(
        aupr_threshold=0.7,
        max_depth_grid="3,5",
        max_bins_grid="16",
        num_trees_grid="5,10",
        folds=2,
        seed=7,
        max_drop_fraction=0.1,
    )
    values = parameter_values(
        Environment.local(tmp_path / "sub" / ".." / "root"),
        "20261129-manual",
        RUN_DATE,
        tuning,
        attempt=2,
        training_data_uri="/data/raw.csv",
    )
    root = tmp_path.resolve() / "root"
    assert values == {
        "pipeline_id": "20261129-manual",
        "pipeline_execution_dt": "2026-11-29",
        "training_data_uri": "/data/raw.csv",
        "dataset_uri": f"{root}/warehouse/customer_churn_ds",
        "artifact_root": str(root),
        "code_uri": f"{REPO}/spark_jobs",
        "python_file_uris": [f"{root}/code/churn_ml.zip"],
        "preprocessing_batch_id": "churn-preprocessing-20261129-manual-r2",
        "training_batch_id": "churn-training-20261129-manual-r2",
        "tuning_batch_id": "churn-tuning-20261129-manual-r2",
        "project": "",
        "region": "us-central1",
        "container_image": "",
        "runtime_version": "2.3",
        "service_account": "",
        "subnetwork_uri": "",
        "spark_history_server": "",
        "spark_properties": {
            "spark.driver.memory": "4g",
            "spark.log.level": "WARN",
            "spark.sql.shuffle.partitions": "4",
            "spark.default.parallelism": "4",
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
        },
        "aupr_threshold": 0.7,
        "max_drop_fraction": 0.1,
        "max_depth_grid": "3,5",
        "max_bins_grid": "16",
        "num_trees_grid": "5,10",
        "folds": 2,
        "seed": 7,
    }


def test_local_driver_memory_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CHURN_SPARK_DRIVER_MEMORY", "9g")
    values = parameter_values(Environment.local(tmp_path), "20261129", RUN_DATE)
    assert values["spark_properties"]["spark.driver.memory"] == "9g"


def test_parameter_values_local_default_landing_partition(tmp_path):
    values = parameter_values(Environment.local(tmp_path), "20261129", RUN_DATE)
    assert values["training_data_uri"] == f"{tmp_path.resolve()}/landing/train/dt=2026-11-29"
    assert values["preprocessing_batch_id"] == "churn-preprocessing-20261129"


def test_parameter_values_are_fresh_copies():
    env = gcp_env()
    first = parameter_values(env, "20261129", RUN_DATE)
    first["spark_properties"]["spark.driver.memory"] = "1g"
    first["python_file_uris"].append("gs://elsewhere/x.zip")
    second = parameter_values(env, "20261129", RUN_DATE)
    assert second["spark_properties"]["spark.driver.memory"] == "12g"
    assert second["python_file_uris"] == ["gs://churn-code/spark_jobs/churn_ml.zip"]


def test_for_attempt_changes_only_the_batch_ids():
    first = parameter_values(gcp_env(), "20261129", RUN_DATE)
    third = for_attempt(first, 3)
    assert third == parameter_values(gcp_env(), "20261129", RUN_DATE, attempt=3)
    assert {k for k in first if first[k] != third[k]} == {
        "preprocessing_batch_id",
        "training_batch_id",
        "tuning_batch_id",
    }
    assert third["training_batch_id"] == "churn-training-20261129-r3"
    assert first["training_batch_id"] == "churn-training-20261129"  # input left alone


@pytest.mark.parametrize(
    ("step", "pipeline_id", "attempt", "expected"),
    [
        ("preprocessing", "20261129", 1, "churn-preprocessing-20261129"),
        ("training", "20261129", 2, "churn-training-20261129-r2"),
        ("tuning", "20261129-manual-1", 11, "churn-tuning-20261129-manual-1-r11"),
    ],
)
def test_batch_id(step, pipeline_id, attempt, expected):
    value = batch_id(step, pipeline_id, attempt)
    assert value == expected
    assert BATCH_ID.fullmatch(value)
    assert 4 <= len(value) <= 63


@pytest.mark.parametrize(
    "pipeline_id",
    ["2026_11_29", "20261129X", "", "20261129-", "2026 1129", "x" * 50, "20261129.1"],
)
def test_batch_id_rejects_invalid_pipeline_ids(pipeline_id):
    with pytest.raises(ValueError, match="not a valid Dataproc batch id"):
        batch_id("preprocessing", pipeline_id)


def test_batch_id_length_limit():
    longest = "9" * (63 - len("churn-preprocessing-"))
    assert batch_id("preprocessing", longest) == f"churn-preprocessing-{longest}"
    with pytest.raises(ValueError):
        batch_id("preprocessing", longest + "9")
    with pytest.raises(ValueError):
        batch_id("preprocessing", longest, attempt=2)


@pytest.mark.parametrize(
    ("pipeline_id", "attempt", "expected"),
    [
        ("20261129", 1, "churn-training-20261129"),
        ("20261129", 3, "churn-training-20261129-r3"),
        ("20261129-backfill", 1, "churn-training-20261129-backfill"),
    ],
)
def test_job_id(pipeline_id, attempt, expected):
    assert job_id(pipeline_id, attempt) == expected
    assert JOB_ID.fullmatch(expected)


@pytest.mark.parametrize("pipeline_id", ["Bad_ID", "20261129A", "2026/11/29", "x" * 114])
def test_job_id_rejects_invalid_pipeline_ids(pipeline_id):
    with pytest.raises(ValueError, match="not a valid Vertex job id"):
        job_id(pipeline_id)


def test_job_id_length_limit():
    longest = "9" * (128 - len("churn-training-"))
    assert len(job_id(longest)) == 128
    with pytest.raises(ValueError):
        job_id(longest + "9")


# --- offline Vertex AI check: the values against the committed template ---------------------


@pytest.fixture(scope="module")
def template() -> dict:
    return yaml.safe_load(TEMPLATE.read_text())


@pytest.fixture(scope="module")
def aiplatform():
    from google.cloud import aiplatform

    return aiplatform


def pipeline_job(aiplatform, values: dict):
    from google.auth.credentials import AnonymousCredentials

    return aiplatform.PipelineJob(
        display_name="t",
        template_path=str(TEMPLATE),
        job_id=job_id("20261129"),
        pipeline_root="gs://bucket/root",
        parameter_values=values,
        enable_caching=False,
        project="p",
        location="us-central1",
        credentials=AnonymousCredentials(),
    )


def plain(value):
    """proto-plus map and repeated values -> dict and list, recursively."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [plain(v) for v in value]
    return value


def test_values_match_the_template_parameters(template):
    declared = template["root"]["inputDefinitions"]["parameters"]
    required = {name for name, spec in declared.items() if not spec.get("isOptional")}
    values = parameter_values(gcp_env(), "20261129", RUN_DATE)
    # PipelineJob rejects unknown names but never reports a missing one: check both sides here.
    assert required <= set(values), f"required parameters not set: {required - set(values)}"
    assert set(values) <= set(declared), f"unknown parameters: {set(values) - set(declared)}"
    assert set(values) == set(declared)  # the run pins every default as well
    assert required == {
        "pipeline_id",
        "pipeline_execution_dt",
        "training_data_uri",
        "dataset_uri",
        "artifact_root",
        "code_uri",
        "python_file_uris",
        "preprocessing_batch_id",
        "training_batch_id",
        "tuning_batch_id",
    }


def test_pipeline_job_accepts_the_values_offline(aiplatform, template):
    values = parameter_values(gcp_env(), "20261129", RUN_DATE)
    job = pipeline_job(aiplatform, values)
    resource = job._gca_resource
    assert job.job_id == "churn-training-20261129"
    assert resource.runtime_config.gcs_output_directory == "gs://bucket/root"
    sent = plain(dict(resource.runtime_config.parameter_values))
    assert sent == values
    assert job.to_dict()["runtimeConfig"]["parameterValues"] == values
    spec = job.to_dict()["pipelineSpec"]
    assert spec["root"]["inputDefinitions"] == template["root"]["inputDefinitions"]


def test_pipeline_job_rejects_a_misspelt_parameter(aiplatform):
    values = parameter_values(gcp_env(), "20261129", RUN_DATE)
    values["aupr_treshold"] = values.pop("aupr_threshold")
    with pytest.raises(ValueError, match="aupr_treshold"):
        pipeline_job(aiplatform, values)
