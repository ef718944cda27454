"""The only place that touches URIs: tables, text files and directories, with write-then-commit.

A table URI is ``bq://project.dataset.table`` (BigQuery, through the spark-bigquery connector)
or a directory (``gs://``, ``file://`` or a plain path) holding Parquet partitioned by the
run key, e.g. ``<table>/pipeline_id=20261129/``. Writers stage the data under a ``_staging``
folder, which Spark readers ignore, and move it into place only when it is complete, so
readers never see half a run and a re-run replaces its own partition instead of adding to it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession

from churn_ml import bigquery_sql as sql
from churn_ml.bigquery_sql import BigQueryTable, bigquery_table

log = logging.getLogger(__name__)

_SCHEMES = ("gs://", "file://", "hdfs://")
TRANSACTION_ATTEMPTS = 5


def normalize(uri: str) -> str:
    """A plain or relative path becomes an absolute ``file://`` URI; other URIs pass through."""
    if not uri:
        raise ValueError("empty URI")
    if uri.startswith("bq://"):
        return uri
    if uri.startswith(_SCHEMES):
        return uri.rstrip("/")
    if "://" in uri:
        raise ValueError(f"unsupported URI scheme in {uri!r}: use gs://, bq://, file:// or a path")
    return "file://" + os.path.abspath(uri)


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])


def partition_path(partition: dict[str, str]) -> str:
    return "/".join(f"{k}={v}" for k, v in partition.items())


# --- Hadoop filesystem (local disk, GCS or HDFS alike) ---------------------------------


def _fs(spark: SparkSession, uri: str):
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), path


def exists(spark: SparkSession, uri: str) -> bool:
    fs, path = _fs(spark, uri)
    return fs.exists(path)


def delete(spark: SparkSession, uri: str) -> None:
    fs, path = _fs(spark, uri)
    fs.delete(path, True)


def commit(spark: SparkSession, staged: str, final: str) -> None:
    """Move a fully written file or folder into place, replacing what was there."""
    fs, final_path = _fs(spark, final)
    staged_path = _fs(spark, staged)[1]
    fs.mkdirs(final_path.getParent())
    old = None
    if fs.exists(final_path):
        old = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(staged + ".replaced")
        fs.delete(old, True)
        if not fs.rename(final_path, old):
            raise OSError(f"could not move aside {final}")
    if not fs.rename(staged_path, final_path):
        raise OSError(f"could not commit {staged} to {final}")
    if old is not None:
        fs.delete(old, True)
    _remove_if_empty(fs, staged_path.getParent())


def _remove_if_empty(fs, folder) -> None:
    """Leave no empty ``_staging`` behind; a non-recursive delete spares one another writer
    has just filled."""
    if folder.getName() == "_staging" and fs.exists(folder) and not fs.listStatus(folder):
        fs.delete(folder, False)


def staging_uri(final: str) -> str:
    """A sibling under ``_staging/``, which Spark's file listing skips."""
    parent, name = final.rstrip("/").rsplit("/", 1)
    return join(parent, "_staging", name)


def write_text(spark: SparkSession, uri: str, text: str) -> None:
    uri = normalize(uri)
    staged = staging_uri(uri)
    fs, path = _fs(spark, staged)
    stream = fs.create(path, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()
    commit(spark, staged, uri)


def read_text(spark: SparkSession, uri: str) -> str:
    return spark.read.text(normalize(uri), wholetext=True).first()[0]


# --- Tables ------------------------------------------------------------------------------


def read_table(spark: SparkSession, uri: str, partition: dict[str, str] | None = None) -> DataFrame:
    """Read a whole table, or one run's partition of it (partition columns included)."""
    bq = bigquery_table(uri)
    if bq:
        df = spark.read.format("bigquery").load(bq.name)
        for key, value in (partition or {}).items():
            df = df.where(df[key] == value)
        return df
    base = normalize(uri)
    if not exists(spark, base):
        raise FileNotFoundError(f"table {uri} does not exist")
    if not partition:
        return spark.read.parquet(base)
    return spark.read.option("basePath", base).parquet(join(base, partition_path(partition)))


def write_table(
    df: DataFrame, uri: str, partition: dict[str, str], execution_dt: dt.date | None = None
) -> None:
    """Replace the rows of one run (``partition``) in the table, atomically for readers."""
    stage_table(df, uri, partition, execution_dt).commit()


@dataclass(frozen=True)
class StagedTable:
    """One run's rows written where readers do not look yet: commit or discard them.

    On BigQuery the run's day (``execution_dt``) prunes the DELETE to one partition; without
    it, commit reads the one day of the staged rows.
    """

    spark: SparkSession
    uri: str
    partition: dict[str, str]
    staged: str  # a filesystem folder, or the BigQuery staging table's name
    columns: tuple[str, ...] = ()
    execution_dt: dt.date | None = None

    def commit(self) -> None:
        bq = bigquery_table(self.uri)
        if bq:
            _commit_bigquery(self, bq)
            return
        final = join(normalize(self.uri), partition_path(self.partition))
        commit(self.spark, self.staged, final)
        log.info("wrote %s", final)

    def discard(self) -> None:
        bq = bigquery_table(self.uri)
        if bq:
            _bigquery_client(bq.project).delete_table(self.staged, not_found_ok=True)
        else:
            delete(self.spark, self.staged)
            fs, path = _fs(self.spark, self.staged)
            _remove_if_empty(fs, path.getParent())


def stage_table(
    df: DataFrame, uri: str, partition: dict[str, str], execution_dt: dt.date | None = None
) -> StagedTable:
    """Write one run's rows beside the table: Parquet under ``_staging`` or a BigQuery table
    that expires by itself. A write that fails leaves nothing staged.
    """
    bq = bigquery_table(uri)
    if bq:
        staging = sql.staging_table(bq, partition)
        table = StagedTable(
            df.sparkSession, uri, partition, staging.name, tuple(df.columns), execution_dt
        )
        writer = df.write.format("bigquery").option("writeMethod", "direct").mode("overwrite")
    else:
        staged = staging_uri(join(normalize(uri), partition_path(partition)))
        table = StagedTable(df.sparkSession, uri, partition, staged, execution_dt=execution_dt)
        writer = df.drop(*partition).write.mode("overwrite").format("parquet")
    try:
        writer.save(table.staged)
        if bq:
            _bigquery_client(bq.project).query(sql.expire_sql(staging)).result()
    except BaseException:
        table.discard()
        raise
    return table


def _bigquery_client(project: str):
    from google.cloud import bigquery  # on the Dataproc image; never needed locally

    return bigquery.Client(project=project)


def is_concurrent_update(error: Exception) -> bool:
    """BigQuery cancelled the job because other DML changed the same table meanwhile."""
    return "concurrent update" in str(error).lower()


def retry_concurrent(run: Callable[[], object], attempts: int = TRANSACTION_ATTEMPTS):
    """Run a BigQuery job again, after a growing pause, while concurrent DML cancels it."""
    for attempt in range(1, attempts + 1):
        try:
            return run()
        except Exception as error:
            if attempt == attempts or not is_concurrent_update(error):
                raise
            pause = 2**attempt
            log.warning("%s; attempt %d of %d in %d s", error, attempt + 1, attempts, pause)
            time.sleep(pause)


def _commit_bigquery(staged: StagedTable, target: BigQueryTable) -> None:
    """Create the table if needed, swap the run's rows in one transaction, drop the staging."""
    client = _bigquery_client(target.project)
    staging = sql.staging_table(target, staged.partition)
    keys = list(staged.partition)
    try:
        day = staged.execution_dt or _staged_day(client, staging)
        client.query(sql.create_table_sql(target, staging, keys)).result()
        replace = sql.replace_rows_sql(target, staging, keys, staged.columns)
        config = sql.query_config(sql.run_parameters(staged.partition, day))
        retry_concurrent(lambda: client.query(replace, job_config=config).result())
    finally:
        client.delete_table(staging.name, not_found_ok=True)
    log.info("wrote %s for %s on %s", target.name, staged.partition, day)


def _staged_day(client, staging: BigQueryTable) -> dt.date:
    days = [row[0] for row in client.query(sql.staged_days_sql(staging)).result()]
    if len(days) != 1:
        raise ValueError(
            f"the staged rows of {staging.name} carry {len(days)} execution dates, not one"
        )
    return days[0]
