"""Run config -> ``parameter_values``, ids, and an offline check against the committed template."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
import yaml

from churn_core.grids import GRIDS
from churn_core.lineage import job_id
from churn_core.pipeline_params import (
    DEFAULT_TUNING,
    Environment,
    Tuning,
    for_attempt,
    parameter_values,
    step_inputs,
)
from pipeline.compile import TEMPLATE

REPO = Path(__file__).resolve().parents[2]
RUN_DATE = dt.date(2026, 11, 29)
A1 = "k7f2q-1"
GCP_SETTINGS = {
    "container_image": "europe-docker.pkg.dev/churn-prod/spark/churn-ml:1.0",
    "service_account": "churn-batches@churn-prod.iam.gserviceaccount.com",
    "subnetwork_uri": "projects/churn-prod/regions/europe-west1/subnetworks/dataproc",
}


def gcp_env() -> Environment:
    return Environment.gcp(
        "churn-prod", "europe-west1", "churn-data", "churn-models", "churn-code", **GCP_SETTINGS
    )


def described(values: dict) -> dict:
    """The values that describe the run: all but the steps' whole inputs, which must be what
    ``step_inputs`` makes of them."""
    inputs = step_inputs(values)
    assert {key: values[key] for key in inputs} == inputs
    return {key: value for key, value in values.items() if key not in inputs}


def test_parameter_values_gcp():
    assert described(parameter_values(gcp_env(), "20261129", RUN_DATE, A1)) == {
        "pipeline_id": "20261129",
        "pipeline_execution_dt": "2026-11-29",
        "training_data_uri": "gs://churn-data/landing/train/dt=2026-11-29",
        "dataset_uri": "bq://churn-prod.customer_churn_ds",
        "artifact_root": "gs://churn-models",
        "code_uri": "gs://churn-code/spark_jobs",
        "python_file_uris": ["gs://churn-code/spark_jobs/churn_ml.zip"],
        "preprocessing_batch_id": "churn-preprocessing-20261129-k7f2q-1",
        "training_batch_id": "churn-training-20261129-k7f2q-1",
        "tuning_batch_id": "churn-tuning-20261129-k7f2q-1",
        "attempt": "k7f2q-1",
        "project": "churn-prod",
        "region": "europe-west1",
        "container_image": "europe-docker.pkg.dev/churn-prod/spark/churn-ml:1.0",
        "runtime_version": "3.0",
        "service_account": "churn-batches@churn-prod.iam.gserviceaccount.com",
        "subnetwork_uri": "projects/churn-prod/regions/europe-west1/subnetworks/dataproc",
        "spark_history_server": "",
        "spark_properties": {
            "spark.driver.cores": "4",
            "spark.driver.memory": "12g",
            "spark.executor.cores": "4",
            "spark.executor.memory": "12g",
            "spark.dynamicAllocation.maxExecutors": "10",
            "spark.dataproc.lineage.enabled": "true",
        },
        "tuning": True,
        "aupr_threshold": 0.5,
        "max_drop_fraction": 0.05,
        "max_depth_grid": "5,10,15",
        "max_bins_grid": "24,32,40",
        "num_trees_grid": "25,30,35",
        "folds": 5,
        "seed": 42,
        "champion_version": "",
        "champion_model_uri": "",
        "champion_seed": "",
    }


def test_parameter_values_local(tmp_path, monkeypatch):
    monkeypatch.delenv("CHURN_SPARK_DRIVER_MEMORY", raising=False)
    tuning = Tuning(
        enabled=False,
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
        "k7f2q-2",
        tuning,
        training_data_uri="/data/raw.csv",
    )
    root = tmp_path.resolve() / "root"
    assert described(values) == {
        "pipeline_id": "20261129-manual",
        "pipeline_execution_dt": "2026-11-29",
        "training_data_uri": "/data/raw.csv",
        "dataset_uri": f"{root}/warehouse/customer_churn_ds",
        "artifact_root": str(root),
        "code_uri": f"{REPO}/spark_jobs",
        "python_file_uris": [f"{root}/code/churn_ml.zip"],
        "preprocessing_batch_id": "churn-preprocessing-20261129-manual-k7f2q-2",
        "training_batch_id": "churn-training-20261129-manual-k7f2q-2",
        "tuning_batch_id": "churn-tuning-20261129-manual-k7f2q-2",
        "attempt": "k7f2q-2",
        "project": "",
        "region": "us-central1",
        "container_image": "",
        "runtime_version": "3.0",
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
            # the Spark jobs' OpenLineage events, to a file under the root
            "spark.openlineage.transport.type": "file",
            "spark.openlineage.transport.location": f"{root}/lineage/events.jsonl",
        },
        "tuning": False,
        "aupr_threshold": 0.7,
        "max_drop_fraction": 0.1,
        "max_depth_grid": "3,5",
        "max_bins_grid": "16",
        "num_trees_grid": "5,10",
        "folds": 2,
        "seed": 7,
        "champion_version": "",
        "champion_model_uri": "",
        "champion_seed": "",
    }


def test_local_driver_memory_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CHURN_SPARK_DRIVER_MEMORY", "9g")
    values = parameter_values(Environment.local(tmp_path), "20261129", RUN_DATE, A1)
    assert values["spark_properties"]["spark.driver.memory"] == "9g"


CHAMPION = {
    "version": "20261128-training-k7f2q-1",
    "model_uri": "gs://churn-models/models/customer-churn-model/training/20261128/k7f2q-1",
    "seed": 42,
}


def test_the_champion_becomes_three_parameters():
    values = parameter_values(gcp_env(), "20261129", RUN_DATE, A1, champion=CHAMPION)
    assert {k: v for k, v in values.items() if k.startswith("champion_")} == {
        "champion_version": "20261128-training-k7f2q-1",
        "champion_model_uri": CHAMPION["model_uri"],
        "champion_seed": "42",
    }
    unknown_seed = parameter_values(
        gcp_env(), "20261129", RUN_DATE, A1, champion={**CHAMPION, "seed": None}
    )
    assert unknown_seed["champion_seed"] == ""
    # A retry's attempt keeps the champion the plan resolved.
    assert for_attempt(values, "k7f2q-2")["champion_version"] == CHAMPION["version"]


def test_parameter_values_local_default_landing_partition(tmp_path):
    values = parameter_values(Environment.local(tmp_path), "20261129", RUN_DATE, A1)
    assert values["training_data_uri"] == f"{tmp_path.resolve()}/landing/train/dt=2026-11-29"
    assert values["preprocessing_batch_id"] == "churn-preprocessing-20261129-k7f2q-1"


def test_parameter_values_are_fresh_copies():
    env = gcp_env()
    first = parameter_values(env, "20261129", RUN_DATE, A1)
    first["spark_properties"]["spark.driver.memory"] = "1g"
    first["python_file_uris"].append("gs://elsewhere/x.zip")
    second = parameter_values(env, "20261129", RUN_DATE, A1)
    assert second["spark_properties"]["spark.driver.memory"] == "12g"
    assert second["python_file_uris"] == ["gs://churn-code/spark_jobs/churn_ml.zip"]


def test_for_attempt_changes_only_the_attempt_and_its_batch_ids():
    first = parameter_values(gcp_env(), "20261129", RUN_DATE, A1)
    third = for_attempt(first, "k7f2q-3")
    assert third == parameter_values(gcp_env(), "20261129", RUN_DATE, "k7f2q-3")
    assert {k for k in first if first[k] != third[k]} == {
        "preprocessing_batch_id",
        "training_batch_id",
        "tuning_batch_id",
        "attempt",
        # what names the attempt: its folders, and preprocessing's hold on the run's commit
        "preprocessing_batch",
        "training_batch",
        "tuning_batch",
        "training_metrics_uri",
        "tuning_metrics_uri",
    }
    assert third["training_batch_id"] == "churn-training-20261129-k7f2q-3"
    assert first["training_batch_id"] == "churn-training-20261129-k7f2q-1"  # input left alone


def option(batch: dict, flag: str) -> str:
    args = batch["pyspark_batch"]["args"]
    return args[args.index(flag) + 1]


@pytest.mark.parametrize("champion", [None, CHAMPION])
def test_each_step_gets_its_run_whole(champion):
    values = parameter_values(gcp_env(), "20261129", RUN_DATE, A1, champion=champion)
    pre, train, tune = (values[f"{s}_batch"] for s in ("preprocessing", "training", "tuning"))
    for batch, job in ((pre, "preprocess"), (train, "train"), (tune, "tune")):
        assert (
            batch["pyspark_batch"]["main_python_file_uri"] == f"gs://churn-code/spark_jobs/{job}.py"
        )
        assert batch["pyspark_batch"]["args"][:4] == [
            "--pipeline-id", "20261129", "--day", "2026-11-29",
        ]  # fmt: skip
        assert batch["labels"] == {"app": "customer-churn", "pipeline-id": "20261129"}
        assert batch["environment_config"]["execution_config"]["ttl"] == "43200s"
    assert option(pre, "--input-uri") == values["training_data_uri"]
    assert option(pre, "--max-drop-fraction") == "0.05"
    for batch, operation in ((train, "training"), (tune, "hyperparameter-tuning")):
        run = f"customer-churn-model/{operation}/20261129/{A1}"
        assert option(batch, "--model-uri") == f"gs://churn-models/models/{run}"
        assert option(batch, "--metrics-uri") == f"gs://churn-models/metrics/{run}"
        assert option(batch, "--seed") == "42"
        assert option(batch, "--champion-version") == (champion or {}).get("version", "")
        assert option(batch, "--champion-seed") == ("42" if champion else "")
    assert [option(tune, f) for f in ("--folds", "--max-depth-grid", "--num-trees-grid")] == [
        "5", "5,10,15", "25,30,35",
    ]  # fmt: skip
    assert values["training_metrics_uri"] == option(train, "--metrics-uri")
    assert values["tuning_metrics_uri"] == option(tune, "--metrics-uri")
    assert values["training_table_uri"] == "bq://churn-prod.customer_churn_ds.training_data"
    assert values["dataset_display_name"] == "customer-churn-20261129"


def test_the_default_tuning_is_the_default_grid():
    assert (DEFAULT_TUNING.max_depth_grid, DEFAULT_TUNING.num_trees_grid) == ("5,10,15", "25,30,35")
    small = Tuning.of_grid("small", folds=3)
    assert small.max_depth_grid == ",".join(map(str, GRIDS["small"]["max_depth"]))
    assert (small.folds, small.enabled) == (3, True)


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
        job_id=job_id("20261129", A1),
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
    values = parameter_values(gcp_env(), "20261129", RUN_DATE, A1)
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
        "attempt",
    }


@pytest.mark.parametrize("champion", [None, CHAMPION])
def test_pipeline_job_accepts_the_values_offline(aiplatform, template, champion):
    values = parameter_values(gcp_env(), "20261129", RUN_DATE, A1, champion=champion)
    job = pipeline_job(aiplatform, values)
    resource = job._gca_resource
    assert job.job_id == "churn-training-20261129-k7f2q-1"
    assert resource.runtime_config.gcs_output_directory == "gs://bucket/root"
    sent = plain(dict(resource.runtime_config.parameter_values))
    assert sent == values
    assert job.to_dict()["runtimeConfig"]["parameterValues"] == values
    spec = job.to_dict()["pipelineSpec"]
    assert spec["root"]["inputDefinitions"] == template["root"]["inputDefinitions"]


def test_pipeline_job_rejects_a_misspelt_parameter(aiplatform):
    values = parameter_values(gcp_env(), "20261129", RUN_DATE, A1)
    values["aupr_treshold"] = values.pop("aupr_threshold")
    with pytest.raises(ValueError, match="aupr_treshold"):
        pipeline_job(aiplatform, values)
