"""The only place that touches URIs: tables, text files and directories, with write-then-commit.

A table URI is ``bq://project.dataset.table`` (BigQuery, through the spark-bigquery connector)
or a directory (``gs://``, ``file://`` or a plain path) holding Parquet partitioned by the
run key, e.g. ``<table>/pipeline_id=20261129/``. Writers stage the data under a ``_staging``
folder, which Spark readers ignore, and move it into place only when it is complete, so
readers never see half a run and a re-run replaces its own partition instead of adding to it.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

_BQ_TABLE = re.compile(r"^bq://([a-z][a-z0-9-]{4,28}[a-z0-9])\.(\w{1,1024})\.([\w-]{1,1024})$")
_SCHEMES = ("gs://", "file://", "hdfs://")


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


@dataclass(frozen=True)
class BigQueryTable:
    project: str
    dataset: str
    table: str

    @property
    def name(self) -> str:
        return f"{self.project}.{self.dataset}.{self.table}"


def bigquery_table(uri: str) -> BigQueryTable | None:
    """Parse ``bq://project.dataset.table``; None for a filesystem URI."""
    if not uri.startswith("bq://"):
        return None
    match = _BQ_TABLE.fullmatch(uri)  # not match(): "$" also matches before a final "\n"
    if not match:
        raise ValueError(f"bad BigQuery URI {uri!r}: expected bq://project.dataset.table")
    return BigQueryTable(*match.groups())


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


def write_table(df: DataFrame, uri: str, partition: dict[str, str]) -> None:
    """Replace the rows of one run (``partition``) in the table, atomically for readers."""
    stage_table(df, uri, partition).commit()


@dataclass(frozen=True)
class StagedTable:
    """One run's rows written where readers do not look yet: commit or discard them."""

    spark: SparkSession
    uri: str
    partition: dict[str, str]
    staged: str  # a filesystem folder, or the BigQuery staging table's name

    def commit(self) -> None:
        bq = bigquery_table(self.uri)
        if bq:
            _commit_bigquery(bq, self.partition)
            return
        final = join(normalize(self.uri), partition_path(self.partition))
        commit(self.spark, self.staged, final)
        log.info("wrote %s", final)

    def discard(self) -> None:
        bq = bigquery_table(self.uri)
        if bq:
            from google.cloud import bigquery

            bigquery.Client(project=bq.project).delete_table(self.staged, not_found_ok=True)
        else:
            delete(self.spark, self.staged)


def stage_table(df: DataFrame, uri: str, partition: dict[str, str]) -> StagedTable:
    """Write one run's rows beside the table: Parquet under ``_staging`` or a BigQuery table.

    A write that fails leaves nothing staged.
    """
    bq = bigquery_table(uri)
    if bq:
        table = StagedTable(df.sparkSession, uri, partition, _bigquery_staging(bq, partition).name)
        writer = df.write.format("bigquery").option("writeMethod", "direct").mode("overwrite")
    else:
        staged = staging_uri(join(normalize(uri), partition_path(partition)))
        table = StagedTable(df.sparkSession, uri, partition, staged)
        writer = df.drop(*partition).write.mode("overwrite").format("parquet")
    try:
        writer.save(table.staged)
    except BaseException:
        table.discard()
        raise
    return table


def replace_rows_sql(target: BigQueryTable, staging: BigQueryTable, keys: list[str]) -> str:
    """One BigQuery transaction that swaps a run's rows for the staged ones."""
    where = " AND ".join(f"{k} = @{k}" for k in keys)
    return (
        "BEGIN TRANSACTION;\n"
        f"DELETE FROM `{target.name}` WHERE {where};\n"
        f"INSERT INTO `{target.name}` SELECT * FROM `{staging.name}`;\n"
        "COMMIT TRANSACTION;"
    )


def _bigquery_staging(target: BigQueryTable, partition: dict[str, str]) -> BigQueryTable:
    suffix = re.sub(r"\W", "_", "_".join(partition.values()))
    return BigQueryTable(target.project, target.dataset, f"_staging_{target.table}_{suffix}")


def _commit_bigquery(target: BigQueryTable, partition: dict[str, str]) -> None:
    from google.cloud import bigquery  # on the Dataproc image; never needed locally

    staging = _bigquery_staging(target, partition)
    client = bigquery.Client(project=target.project)
    if not _bq_table_exists(client, target):
        client.query(f"CREATE TABLE `{target.name}` LIKE `{staging.name}`").result()
    params = [bigquery.ScalarQueryParameter(k, "STRING", v) for k, v in partition.items()]
    sql = replace_rows_sql(target, staging, list(partition))
    client.query(sql, job_config=bigquery.QueryJobConfig(query_parameters=params)).result()
    client.delete_table(staging.name, not_found_ok=True)
    log.info("wrote %s for %s", target.name, partition)


def _bq_table_exists(client, table: BigQueryTable) -> bool:
    from google.api_core.exceptions import NotFound

    try:
        client.get_table(table.name)
    except NotFound:
        return False
    return True
