"""The scoring batch request and its output check (pure, apart from ``count_*``)."""

from __future__ import annotations

import datetime as dt

from churn_ml import layout


def scoring_args(env, pipeline_id: str, day: dt.date, model_uri: str, model_version: str) -> list:
    return [
        "--pipeline-id", pipeline_id,
        "--pipeline-execution-dt", day.isoformat(),
        "--input-uri", f"{env.scoring_data_root}/{layout.day_partition(day)}",
        "--model-uri", model_uri,
        "--model-version", model_version,
        "--dataset-uri", env.dataset_uri,
    ]  # fmt: skip


def dataproc_batch(env, pipeline_id: str, args: list) -> dict:
    """The Dataproc Serverless Batch of one scoring run (a dict that parses as ``Batch``)."""
    runtime = {"version": env.runtime_version, "properties": dict(env.spark_properties)}
    if env.container_image:
        runtime["container_image"] = env.container_image
    execution = {
        key: value
        for key, value in (
            ("service_account", env.service_account),
            ("subnetwork_uri", env.subnetwork_uri),
        )
        if value
    }
    batch = {
        "pyspark_batch": {
            "main_python_file_uri": f"{env.code_uri}/score.py",
            "python_file_uris": list(env.python_file_uris),
            "args": args,
        },
        "runtime_config": runtime,
        "environment_config": {"execution_config": execution},
        "labels": {"app": "customer-churn", "pipeline-id": pipeline_id},
    }
    if env.spark_history_server:
        batch["environment_config"]["peripherals_config"] = {
            "spark_history_server_config": {"dataproc_cluster": env.spark_history_server}
        }
    return batch


def check_counts(rows_in: int, scored: int, rejected: int) -> dict:
    """Scored + rejected must equal the input, and something must have been scored."""
    if scored + rejected != rows_in:
        raise ValueError(f"scoring lost rows: {rows_in} in, {scored} scored + {rejected} rejected")
    if scored == 0:
        raise ValueError(f"no predictions were written for {rows_in} input rows")
    return {"rows_in": rows_in, "scored": scored, "rejected": rejected}


def count_local(env, pipeline_id: str, day: dt.date) -> tuple[int, int, int]:
    """Input CSV rows and the rows of the run's predictions and rejects partitions."""
    from pathlib import Path

    import pyarrow.parquet as pq

    inputs = Path(f"{env.scoring_data_root}/{layout.day_partition(day)}")
    rows_in = sum(sum(1 for _ in f.open()) - 1 for f in sorted(inputs.glob("*.csv")))

    def table_rows(table: str) -> int:
        folder = Path(layout.table_uri(env.dataset_uri, table)) / f"pipeline_id={pipeline_id}"
        return sum(pq.ParquetFile(f).metadata.num_rows for f in folder.glob("*.parquet"))

    return rows_in, table_rows("batch_predictions"), table_rows("batch_rejects")


def count_gcp(env, pipeline_id: str, day: dt.date) -> tuple[int, int, int]:
    """The same counts on GCS and BigQuery."""
    from airflow.providers.google.cloud.hooks.bigquery import BigQueryHook
    from airflow.providers.google.cloud.hooks.gcs import GCSHook

    bucket, _, prefix = f"{env.scoring_data_root}/{layout.day_partition(day)}/".removeprefix(
        "gs://"
    ).partition("/")
    gcs = GCSHook()
    rows_in = sum(
        len(gcs.download(bucket, name).splitlines()) - 1
        for name in gcs.list(bucket, prefix=prefix)
        if name.endswith(".csv")
    )
    dataset = env.dataset_uri.removeprefix("bq://")
    bigquery = BigQueryHook(use_legacy_sql=False)

    def table_rows(table: str) -> int:
        sql = f"SELECT COUNT(*) FROM `{dataset}.{table}` WHERE pipeline_id = '{pipeline_id}'"
        return int(bigquery.get_records(sql)[0][0])

    return rows_in, table_rows("batch_predictions"), table_rows("batch_rejects")
