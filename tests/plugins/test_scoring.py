"""The scoring batch request and the output check."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import score
from google.cloud.dataproc_v1 import AuthenticationConfig, Batch

from churn_airflow import promotion, scoring
from churn_airflow.scoring import (
    champion_batch,
    check_run,
    dataproc_batch,
    scoring_args,
    validate,
)
from churn_core import stages
from churn_core.pipeline_params import REPO, Environment
from churn_core.run_records import RunStats
from tests.dataproc_schema import strict_batch
from tests.plugins.task_instances import openlineage_parent, task_instance
from tests.plugins.test_promotion import A, write_metrics

DAY = dt.date(2026, 11, 29)
MODEL_URI = "gs://model-b/models/customer-churn-model/training/20261129"


def full_env() -> Environment:
    return Environment.gcp(
        "my-proj",
        "us-central1",
        "data-b",
        "model-b",
        "code-b",
        service_account="sa@x.iam.gserviceaccount.com",
        scoring_service_account="scoring@x.iam.gserviceaccount.com",
        subnetwork_uri="projects/p/regions/r/subnetworks/s",
        container_image="gcr.io/p/img:1",
        runtime_version="3.0",
    )


def minimal_env() -> Environment:
    return Environment.gcp("my-proj", "us-central1", "data-b", "model-b", "code-b")


def args(env: Environment) -> list:
    return scoring_args(env, "20261129", DAY, MODEL_URI, "20261129-training", attempt="abcde-1")


EXPECTED_ARGS = [
    "--pipeline-id", "20261129",
    "--day", "2026-11-29",
    "--input-uri", "gs://data-b/landing/score/dt=2026-11-29",
    "--model-uri", "gs://model-b/models/customer-churn-model/training/20261129",
    "--model-version", "20261129-training",
    "--dataset-uri", "bq://my-proj.customer_churn_ds",
    "--attempt", "abcde-1",
    "--commit-record-uri",
    "gs://model-b/metrics/customer-churn-model/batch-scoring/20261129/commit.json",
    "--stats-uri",
    "gs://model-b/metrics/customer-churn-model/batch-scoring/20261129/run_stats.json",
    "--drift-uri", "gs://model-b/metrics/customer-churn-model/batch-scoring/20261129",
    "--drift-warning", "0.1",
    "--drift-alert", "0.25",
]  # fmt: skip

SERVICE_ACCOUNT = {"user_workload_authentication_type": "SERVICE_ACCOUNT"}
SPARK_PROPERTIES = {
    "spark.driver.cores": "4",
    "spark.driver.memory": "12g",
    "spark.executor.cores": "4",
    "spark.executor.memory": "12g",
    "spark.dynamicAllocation.maxExecutors": "10",
    "spark.dataproc.lineage.enabled": "true",  # Dataplex lineage of the batch
}

EXPECTED_BATCH = {
    "pyspark_batch": {
        "main_python_file_uri": "gs://code-b/spark_jobs/score.py",
        "python_file_uris": ["gs://code-b/spark_jobs/churn_ml.zip"],
        "args": EXPECTED_ARGS,
    },
    "runtime_config": {
        "version": "3.0",
        "properties": SPARK_PROPERTIES,
        "container_image": "gcr.io/p/img:1",
    },
    "environment_config": {
        "execution_config": {
            "ttl": "43200s",  # 12 h, not the API's 4 h default
            "service_account": "scoring@x.iam.gserviceaccount.com",  # not the runtime account
            "subnetwork_uri": "projects/p/regions/r/subnetworks/s",
            "authentication_config": {"user_workload_authentication_type": "SERVICE_ACCOUNT"},
        },
    },
    "labels": {"app": "customer-churn", "pipeline-id": "20261129"},
}


def test_scoring_args():
    assert args(full_env()) == EXPECTED_ARGS


def test_scoring_args_of_the_local_backend(tmp_path):
    env = Environment.local(tmp_path)
    assert scoring_args(env, "x1", DAY, "/m", "x1-training", attempt="abcde-1") == [
        "--pipeline-id", "x1",
        "--day", "2026-11-29",
        "--input-uri", f"{tmp_path.resolve()}/landing/score/dt=2026-11-29",
        "--model-uri", "/m",
        "--model-version", "x1-training",
        "--dataset-uri", f"{tmp_path.resolve()}/warehouse/customer_churn_ds",
        "--attempt", "abcde-1",
        "--commit-record-uri",
        f"{tmp_path.resolve()}/metrics/customer-churn-model/batch-scoring/x1/commit.json",
        "--stats-uri",
        f"{tmp_path.resolve()}/metrics/customer-churn-model/batch-scoring/x1/run_stats.json",
        "--drift-uri", f"{tmp_path.resolve()}/metrics/customer-churn-model/batch-scoring/x1",
        "--drift-warning", "0.1",
        "--drift-alert", "0.25",
    ]  # fmt: skip


def test_scoring_args_pass_the_drift_thresholds(tmp_path):
    env = Environment.local(tmp_path)
    got = scoring_args(
        env, "x1", DAY, "/m", "x1-training", attempt="abcde-1", drift_warning=0.2, drift_alert=0.5
    )
    assert got[-4:] == ["--drift-warning", "0.2", "--drift-alert", "0.5"]
    assert score.parse_args(got).drift_alert == 0.5  # the job takes what the DAG passes


def test_dataproc_batch_with_every_setting():
    assert dataproc_batch(full_env(), "20261129", args(full_env())) == EXPECTED_BATCH


def test_dataproc_batch_parses_strictly_as_a_batch():
    payload = dataproc_batch(full_env(), "20261129", args(full_env()))
    batch = strict_batch(payload)
    assert batch.pyspark_batch.main_python_file_uri == "gs://code-b/spark_jobs/score.py"
    assert list(batch.pyspark_batch.args) == EXPECTED_ARGS
    assert batch.runtime_config.version == "3.0"
    assert dict(batch.runtime_config.properties) == SPARK_PROPERTIES
    execution = batch.environment_config.execution_config
    assert execution.service_account == "scoring@x.iam.gserviceaccount.com"
    # runtime 3.0 would otherwise run it as whoever submits it: Composer's account
    assert execution.authentication_config.user_workload_authentication_type == (
        AuthenticationConfig.AuthenticationType.SERVICE_ACCOUNT
    )
    assert not batch.environment_config.peripherals_config.spark_history_server_config
    assert Batch(payload) == batch  # what the provider operator builds from the same dict


def test_the_submit_task_sends_the_champions_batch_under_its_openlineage_run(tmp_path):
    """What the submit task sends Dataproc, as a strict Batch: the registry's champion of the
    moment, and the task run's OpenLineage identity beside the Dataplex switch."""
    root = str(tmp_path)
    for stage, au_pr in ((stages.TRAINING, 0.7), (stages.TUNING, 0.6)):
        write_metrics(tmp_path, stage, "20261128", au_pr)
    promotion.promote_run({"artifact_root": root, "pipeline_id": "20261128", "attempt": A}, 0.5)
    env = dataclasses.replace(full_env(), artifact_root=root)
    ti = task_instance(task_id="submit_scoring")
    plan = {"pipeline_id": "20261129", "run_key": "k7f2q", "day": "2026-11-29"}
    params = {"drift_warning": 0.1, "drift_alert": 0.25, "max_reject_fraction": 0.05}
    payload = champion_batch(env, plan, {"ti": ti, "params": params}, "k7f2q-1")
    batch = strict_batch(payload)
    assert dict(batch.runtime_config.properties) == {**SPARK_PROPERTIES, **openlineage_parent(ti)}
    args = list(batch.pyspark_batch.args)
    assert args[args.index("--model-version") + 1] == f"20261128-training-{A}"


def test_dataproc_batch_omits_empty_settings():
    env = minimal_env()
    payload = dataproc_batch(env, "20261129", args(env))
    assert payload == {
        "pyspark_batch": {
            "main_python_file_uri": "gs://code-b/spark_jobs/score.py",
            "python_file_uris": ["gs://code-b/spark_jobs/churn_ml.zip"],
            "args": EXPECTED_ARGS,
        },
        "runtime_config": {"version": "3.0", "properties": SPARK_PROPERTIES},
        "environment_config": {
            "execution_config": {"ttl": "43200s", "authentication_config": SERVICE_ACCOUNT}
        },
        "labels": {"app": "customer-churn", "pipeline-id": "20261129"},
    }
    assert strict_batch(payload).runtime_config.container_image == ""


def test_dataproc_batch_properties_are_a_copy():
    env = minimal_env()
    payload = dataproc_batch(env, "20261129", [])
    payload["runtime_config"]["properties"]["spark.driver.memory"] = "1g"
    assert env.spark_properties["spark.driver.memory"] == "12g"


def test_dataproc_batch_of_the_local_backend(tmp_path):
    env = Environment.local(tmp_path)
    payload = dataproc_batch(env, "x1", ["--a"])
    assert payload["pyspark_batch"] == {
        "main_python_file_uri": f"{REPO}/spark_jobs/score.py",
        "python_file_uris": [f"{tmp_path.resolve()}/code/churn_ml.zip"],
        "args": ["--a"],
    }
    assert payload["environment_config"] == {
        "execution_config": {"ttl": "43200s", "authentication_config": SERVICE_ACCOUNT}
    }
    strict_batch(payload)
    assert (REPO / "spark_jobs" / "score.py").is_file()


# --- output check -------------------------------------------------------------------------------

STATS = {
    "pipeline_id": "20261129",
    "pipeline_execution_dt": "2026-11-29",
    "model_version": "20261129-training",
    "rows_in": 101,
    "repeated_headers": 0,
    "customers_in": 100,
    "scored": 98,
    "rejected": 2,
}
TABLES = {"batch_predictions": 98, "batch_rejects": 2}


RUN = {
    "pipeline_id": "20261129",
    "pipeline_execution_dt": "2026-11-29",
    "model_version": "20261129-training",
}


def check(stats=STATS, tables=TABLES, run=RUN):
    return check_run(stats and RunStats.from_json(stats), tables, run)


def test_check_run_good():
    assert check() == {"rows_in": 101, "customers_in": 100, "scored": 98, "rejected": 2}
    one = {**STATS, "customers_in": 5, "scored": 5, "rejected": 0}
    assert check(one, {"batch_predictions": 5, "batch_rejects": 0})["scored"] == 5


@pytest.mark.parametrize(
    ("change", "tables", "message"),
    [
        ({"scored": 90}, TABLES, "scoring lost customers: 100 in, 90 scored + 2 rejected"),
        (
            {},
            {"batch_predictions": 97, "batch_rejects": 2},
            "the job counted {'batch_predictions': 98, 'batch_rejects': 2} rows but the tables "
            "hold {'batch_predictions': 97, 'batch_rejects': 2}",
        ),
        (
            {"customers_in": 3, "scored": 0, "rejected": 3},
            {"batch_predictions": 0, "batch_rejects": 3},
            "no predictions were written for 3 input customers",
        ),
        (
            {"model_version": "20261128-training"},
            TABLES,
            "the run stats are of {'pipeline_id': '20261129', 'pipeline_execution_dt': "
            "'2026-11-29', 'model_version': '20261128-training'}, not of this run "
            "{'pipeline_id': '20261129', 'pipeline_execution_dt': '2026-11-29', "
            "'model_version': '20261129-training'}",
        ),
        (
            {"pipeline_execution_dt": "2026-11-28"},
            TABLES,
            "the run stats are of {'pipeline_id': '20261129', 'pipeline_execution_dt': "
            "'2026-11-28', 'model_version': '20261129-training'}, not of this run "
            "{'pipeline_id': '20261129', 'pipeline_execution_dt': '2026-11-29', "
            "'model_version': '20261129-training'}",
        ),
    ],
)
def test_check_run_refuses_what_does_not_add_up(change, tables, message):
    with pytest.raises(ValueError) as refused:
        check({**STATS, **change}, tables)
    assert str(refused.value) == message


def test_check_run_without_stats():
    with pytest.raises(ValueError, match="scoring run 20261129 left no run stats"):
        check(None)


def write_parquet(path, rows: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"customer_id": [f"c{i}" for i in range(rows)]}), path)


def test_validate_a_local_run_from_its_stats_and_parquet_footers(tmp_path):
    env = Environment.local(tmp_path)
    tables = tmp_path / "warehouse" / "customer_churn_ds"
    write_parquet(tables / "batch_predictions" / "pipeline_id=20261129" / "part-0.parquet", 3)
    write_parquet(tables / "batch_predictions" / "pipeline_id=20261129" / "part-1.parquet", 1)
    write_parquet(tables / "batch_predictions" / "pipeline_id=20261128" / "part-0.parquet", 7)
    write_parquet(tables / "batch_rejects" / "pipeline_id=20261129" / "part-0.parquet", 1)
    (tables / "batch_predictions" / "pipeline_id=20261129" / "_SUCCESS").write_text("")
    stats = tmp_path / "metrics" / "customer-churn-model" / "batch-scoring" / "20261129"
    stats.mkdir(parents=True)
    document = {**STATS, "rows_in": 5, "customers_in": 5, "scored": 4, "rejected": 1}
    (stats / "run_stats.json").write_text(json.dumps(document))
    # no input files at all: the check never reads them
    checked = validate(env, "20261129", DAY, "20261129-training")
    assert checked.counts() == {"rows_in": 5, "customers_in": 5, "scored": 4, "rejected": 1}
    # what the batch spent joins the stats it checked, in the same document
    scoring.record_usage(env, checked, {"wall_seconds": 9.5})
    assert json.loads((stats / "run_stats.json").read_text()) == {
        **document,
        "usage": {"wall_seconds": 9.5},
    }
    with pytest.raises(ValueError, match="left no run stats"):
        validate(env, "20261130", DAY, "20261129-training")
