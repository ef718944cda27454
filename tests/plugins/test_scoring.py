"""The scoring batch request and the output check."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.cloud.dataproc_v1 import Batch

from churn_airflow.scoring import check_counts, count_local, dataproc_batch, scoring_args
from pipeline.params import REPO, Environment

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
        subnetwork_uri="projects/p/regions/r/subnetworks/s",
        spark_history_server="projects/p/regions/r/clusters/h",
        container_image="gcr.io/p/img:1",
        runtime_version="2.3",
    )


def minimal_env() -> Environment:
    return Environment.gcp("my-proj", "us-central1", "data-b", "model-b", "code-b")


def args(env: Environment) -> list:
    return scoring_args(env, "20261129", DAY, MODEL_URI, "20261129-training")


EXPECTED_ARGS = [
    "--pipeline-id", "20261129",
    "--pipeline-execution-dt", "2026-11-29",
    "--input-uri", "gs://data-b/landing/score/dt=2026-11-29",
    "--model-uri", "gs://model-b/models/customer-churn-model/training/20261129",
    "--model-version", "20261129-training",
    "--dataset-uri", "bq://my-proj.customer_churn_ds",
]  # fmt: skip

SPARK_PROPERTIES = {
    "spark.driver.cores": "4",
    "spark.driver.memory": "12g",
    "spark.executor.cores": "4",
    "spark.executor.memory": "12g",
    "spark.dynamicAllocation.maxExecutors": "10",
}

EXPECTED_BATCH = {
    "pyspark_batch": {
        "main_python_file_uri": "gs://code-b/spark_jobs/score.py",
        "python_file_uris": ["gs://code-b/spark_jobs/churn_ml.zip"],
        "args": EXPECTED_ARGS,
    },
    "runtime_config": {
        "version": "2.3",
        "properties": SPARK_PROPERTIES,
        "container_image": "gcr.io/p/img:1",
    },
    "environment_config": {
        "execution_config": {
            "service_account": "sa@x.iam.gserviceaccount.com",
            "subnetwork_uri": "projects/p/regions/r/subnetworks/s",
        },
        "peripherals_config": {
            "spark_history_server_config": {"dataproc_cluster": "projects/p/regions/r/clusters/h"}
        },
    },
    "labels": {"app": "customer-churn", "pipeline-id": "20261129"},
}


def test_scoring_args():
    assert args(full_env()) == EXPECTED_ARGS


def test_scoring_args_of_the_local_backend(tmp_path):
    env = Environment.local(tmp_path)
    assert scoring_args(env, "x1", DAY, "/m", "x1-training") == [
        "--pipeline-id", "x1",
        "--pipeline-execution-dt", "2026-11-29",
        "--input-uri", f"{tmp_path.resolve()}/landing/score/dt=2026-11-29",
        "--model-uri", "/m",
        "--model-version", "x1-training",
        "--dataset-uri", f"{tmp_path.resolve()}/warehouse/customer_churn_ds",
    ]  # fmt: skip


def test_dataproc_batch_with_every_setting():
    assert dataproc_batch(full_env(), "20261129", args(full_env())) == EXPECTED_BATCH


def test_dataproc_batch_parses_as_a_batch():
    payload = dataproc_batch(full_env(), "20261129", args(full_env()))
    batch = Batch(payload)
    assert batch.pyspark_batch.main_python_file_uri == "gs://code-b/spark_jobs/score.py"
    assert list(batch.pyspark_batch.args) == EXPECTED_ARGS
    assert list(batch.pyspark_batch.python_file_uris) == ["gs://code-b/spark_jobs/churn_ml.zip"]
    assert batch.runtime_config.version == "2.3"
    assert batch.runtime_config.container_image == "gcr.io/p/img:1"
    assert dict(batch.runtime_config.properties) == SPARK_PROPERTIES
    execution = batch.environment_config.execution_config
    assert execution.service_account == "sa@x.iam.gserviceaccount.com"
    assert execution.subnetwork_uri == "projects/p/regions/r/subnetworks/s"
    history = batch.environment_config.peripherals_config.spark_history_server_config
    assert history.dataproc_cluster == "projects/p/regions/r/clusters/h"
    assert dict(batch.labels) == {"app": "customer-churn", "pipeline-id": "20261129"}

    again = Batch.to_dict(batch)
    assert again["pyspark_batch"]["main_python_file_uri"] == "gs://code-b/spark_jobs/score.py"
    assert again["pyspark_batch"]["args"] == EXPECTED_ARGS
    assert again["runtime_config"]["properties"] == SPARK_PROPERTIES
    assert again["labels"] == payload["labels"]
    assert Batch(again) == batch


def test_dataproc_batch_omits_empty_settings():
    env = minimal_env()
    payload = dataproc_batch(env, "20261129", args(env))
    assert payload == {
        "pyspark_batch": {
            "main_python_file_uri": "gs://code-b/spark_jobs/score.py",
            "python_file_uris": ["gs://code-b/spark_jobs/churn_ml.zip"],
            "args": EXPECTED_ARGS,
        },
        "runtime_config": {"version": "2.3", "properties": SPARK_PROPERTIES},
        "environment_config": {"execution_config": {}},
        "labels": {"app": "customer-churn", "pipeline-id": "20261129"},
    }
    batch = Batch(payload)
    assert batch.runtime_config.container_image == ""
    assert (
        "peripherals_config"
        not in Batch.to_dict(batch, including_default_value_fields=False)["environment_config"]
    )


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
    assert payload["environment_config"] == {"execution_config": {}}
    assert (REPO / "spark_jobs" / "score.py").is_file()


# --- output check -------------------------------------------------------------------------------


def test_check_counts_good():
    assert check_counts(100, 98, 2) == {"rows_in": 100, "scored": 98, "rejected": 2}
    assert check_counts(5, 5, 0) == {"rows_in": 5, "scored": 5, "rejected": 0}


@pytest.mark.parametrize(
    ("rows_in", "scored", "rejected"), [(100, 90, 5), (100, 99, 2), (10, 0, 0)]
)
def test_check_counts_lost_or_extra_rows(rows_in, scored, rejected):
    with pytest.raises(ValueError) as err:
        check_counts(rows_in, scored, rejected)
    assert str(err.value) == (
        f"scoring lost rows: {rows_in} in, {scored} scored + {rejected} rejected"
    )


@pytest.mark.parametrize(("rows_in", "rejected"), [(3, 3), (0, 0)])
def test_check_counts_nothing_scored(rows_in, rejected):
    with pytest.raises(ValueError, match=f"no predictions were written for {rows_in} input rows"):
        check_counts(rows_in, 0, rejected)


def write_parquet(path, rows: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"customer_id": [f"c{i}" for i in range(rows)]}), path)


def test_count_local(tmp_path):
    env = Environment.local(tmp_path)
    day = tmp_path / "landing" / "score" / "dt=2026-11-29"
    day.mkdir(parents=True)
    (day / "part-0.csv").write_text("customerID,tenure\na,1\nb,2\nc,3\n")
    (day / "part-1.csv").write_text("customerID,tenure\nd,4\ne,5\n")
    (day / "part-2.csv").write_text("customerID,tenure\n")  # header only
    (day / "_SUCCESS").write_text("")
    other_day = tmp_path / "landing" / "score" / "dt=2026-11-28"
    other_day.mkdir()
    (other_day / "part-0.csv").write_text("customerID,tenure\nz,9\n")

    tables = tmp_path / "warehouse" / "customer_churn_ds"
    write_parquet(tables / "batch_predictions" / "pipeline_id=20261129" / "part-0.parquet", 3)
    write_parquet(tables / "batch_predictions" / "pipeline_id=20261129" / "part-1.parquet", 1)
    write_parquet(tables / "batch_predictions" / "pipeline_id=20261128" / "part-0.parquet", 7)
    write_parquet(tables / "batch_rejects" / "pipeline_id=20261129" / "part-0.parquet", 1)
    (tables / "batch_predictions" / "pipeline_id=20261129" / "_SUCCESS").write_text("")

    counts = count_local(env, "20261129", DAY)
    assert counts == (5, 4, 1)
    assert check_counts(*counts) == {"rows_in": 5, "scored": 4, "rejected": 1}


def test_count_local_without_outputs(tmp_path):
    env = Environment.local(tmp_path)
    day = tmp_path / "landing" / "score" / "dt=2026-11-29"
    day.mkdir(parents=True)
    (day / "part-0.csv").write_text("customerID\na\nb\n")
    assert count_local(env, "20261129", DAY) == (2, 0, 0)
    with pytest.raises(ValueError, match="scoring lost rows"):
        check_counts(*count_local(env, "20261129", DAY))
