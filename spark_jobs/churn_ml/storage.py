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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from churn_core import bigquery_sql as sql
from churn_core.bigquery_sql import BigQueryTable, bigquery_table
from churn_ml.frames import local_frame

log = logging.getLogger(__name__)

_SCHEMES = ("gs://", "file://", "hdfs://")
STAGING = "_staging"
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
    _prune_staging(fs, staged_path.getParent())


def discard(spark: SparkSession, staged: str) -> None:
    """Delete a staged file or folder, and the staging folders it leaves empty."""
    fs, path = _fs(spark, staged)
    fs.delete(path, True)
    _prune_staging(fs, path.getParent())


def _prune_staging(fs, folder) -> None:
    """Leave no empty folder under ``_staging``, nor an empty ``_staging``: climb from
    ``folder`` while it is empty. A non-recursive delete spares one another writer has just
    filled."""
    while STAGING in folder.toUri().getPath().split("/"):
        if fs.exists(folder) and (fs.listStatus(folder) or not fs.delete(folder, False)):
            return
        if folder.getName() == STAGING:
            return
        folder = folder.getParent()


def staging_uri(final: str, owner: str = "") -> str:
    """A sibling under ``_staging/``, which Spark's file listing skips; an ``owner`` (an
    attempt) stages under a name of its own."""
    parent, name = final.rstrip("/").rsplit("/", 1)
    return join(parent, STAGING, f"{name}.{owner}" if owner else name)


def write_bytes(spark: SparkSession, uri: str, data: bytes) -> None:
    uri = normalize(uri)
    staged = staging_uri(uri)
    fs, path = _fs(spark, staged)
    stream = fs.create(path, True)
    try:
        stream.write(bytearray(data))
    finally:
        stream.close()
    commit(spark, staged, uri)


def write_text(spark: SparkSession, uri: str, text: str) -> None:
    write_bytes(spark, uri, text.encode("utf-8"))


def read_text(spark: SparkSession, uri: str) -> str:
    """A small file's text, read on the driver through Hadoop's filesystem: no Spark job."""
    fs, path = _fs(spark, normalize(uri))
    stream = fs.open(path)
    try:
        data = spark.sparkContext._jvm.org.apache.commons.io.IOUtils.toByteArray(stream)
    finally:
        stream.close()
    return bytes(data).decode("utf-8")


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
    """One run's rows written where readers do not look yet: commit or discard them.

    ``route`` says which rows of a BigQuery staging table that feeds two tables are this one's
    (see ``stage_split``).
    """

    spark: SparkSession
    uri: str
    partition: dict[str, str]
    staged: str  # a filesystem folder, or the BigQuery staging table's name
    columns: tuple[str, ...] = ()
    route: sql.Route | None = None

    def commit(self) -> None:
        commit_all([self])

    def discard(self) -> None:
        if bigquery_table(self.uri):
            _bigquery_client(bigquery_table(self.uri).project).delete_table(
                self.staged, not_found_ok=True
            )
        else:
            discard(self.spark, self.staged)


def commit_all(tables: Sequence[StagedTable]) -> None:
    """Make staged tables visible together.

    On BigQuery one transaction swaps every table's rows: readers see all of them change at
    once, or none. On a filesystem each table's partition is one rename, done in the order
    given: a reader can see the first tables' new rows beside the last ones' old rows for the
    moment between the renames, and a job killed in that moment leaves it so until its re-run.
    """
    bigquery = [bigquery_table(t.uri) for t in tables]
    if all(bigquery):
        _commit_bigquery(tables, bigquery)
        return
    if any(bigquery):
        raise ValueError("cannot commit BigQuery and filesystem tables together")
    for table in tables:
        final = join(normalize(table.uri), partition_path(table.partition))
        commit(table.spark, table.staged, final)
        _discard_other_attempts(table.spark, final)
        log.info("wrote %s", final)


def _discard_other_attempts(spark: SparkSession, final: str) -> None:
    """Drop what other attempts staged for the partition just committed: a killed attempt's
    leftovers, or a superseded one's, which could never commit."""
    fs, pattern = _fs(spark, staging_uri(final, "*"))
    for status in fs.globStatus(pattern) or []:
        fs.delete(status.getPath(), True)
    _prune_staging(fs, pattern.getParent())


def _bigquery_writer(df: DataFrame):
    return df.write.format("bigquery").option("writeMethod", "direct").mode("overwrite")


def _stage_bigquery(
    df: DataFrame, target: BigQueryTable, partition: dict[str, str], owner: str
) -> str:
    """Write ``df`` to the run's (and owner's) staging table, which expires by itself; its
    name."""
    staging = sql.staging_table(target, {**partition, "owner": owner} if owner else partition)
    try:
        _bigquery_writer(df).save(staging.name)
        _bigquery_client(target.project).query(sql.expire_sql(staging)).result()
    except BaseException:
        _bigquery_client(target.project).delete_table(staging.name, not_found_ok=True)
        raise
    return staging.name


def stage_table(
    df: DataFrame,
    uri: str,
    partition: dict[str, str],
    owner: str = "",
) -> StagedTable:
    """Write one run's rows beside the table: Parquet under ``_staging`` or a BigQuery table
    that expires by itself, named for the ``owner`` attempt when given. A write that fails
    leaves nothing staged.
    """
    bq = bigquery_table(uri)
    spark = df.sparkSession
    if bq:
        staging = _stage_bigquery(df, bq, partition, owner)
        return StagedTable(spark, uri, partition, staging, tuple(df.columns))
    staged = staging_uri(join(normalize(uri), partition_path(partition)), owner)
    try:
        df.drop(*partition).write.mode("overwrite").format("parquet").save(staged)
    except BaseException:
        discard(spark, staged)
        raise
    return StagedTable(spark, uri, partition, staged)


# Where Spark writes the rows of a null partition value.
_NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"


@dataclass(frozen=True)
class StagedSplit:
    """Rows for two tables from one write, staged: those whose ``route`` column is null are the
    main table's (every column but ``route``), the others the side table's (``side_columns``).

    ``tables()`` readies both for ``commit_all``; ``discard()`` drops what is staged. On
    BigQuery the two share one staging table and the transaction routes its rows. On a
    filesystem the write is Parquet partitioned by ``route``: the null partition's folder is
    the main table's partition as it will be committed; the side rows, few by the reject
    limit, are rewritten with their own columns by ``tables()``.
    """

    spark: SparkSession
    main_uri: str
    side_uri: str
    route: str
    side_columns: tuple[str, ...]
    partition: dict[str, str]
    staged: str  # the partitioned folder, or the BigQuery staging table's name
    schema: StructType  # of the rows written, lineage included
    owner: str = ""  # the attempt whose staging names these are

    @property
    def main_columns(self) -> tuple[str, ...]:
        return tuple(c for c in self.schema.fieldNames() if c != self.route)

    def _bigquery(self) -> BigQueryTable | None:
        return bigquery_table(self.main_uri)

    def _in_files(self, *dropped: str) -> StructType:
        """The columns the staged Parquet files hold (partition keys are folder names)."""
        skip = (*self.partition, *dropped)
        return StructType([f for f in self.schema if f.name not in skip])

    def side_rows(self) -> DataFrame:
        """The staged rows bound for the side table, with its columns."""
        if self._bigquery():
            rows = self.spark.read.format("bigquery").load(self.staged)
        else:
            rows = (
                self.spark.read.schema(self._in_files())  # the route from the folder names
                .option("basePath", self.staged)
                .parquet(self.staged)
                .withColumns({k: F.lit(v) for k, v in self.partition.items()})
            )
        return rows.where(F.col(self.route).isNotNull()).select(*self.side_columns)

    def tables(self) -> list[StagedTable]:
        """The side table and then the main table, staged and ready to commit together."""
        if self._bigquery():
            return [
                StagedTable(self.spark, self.side_uri, self.partition, self.staged,
                            self.side_columns, sql.Route(self.route, False)),
                StagedTable(self.spark, self.main_uri, self.partition, self.staged,
                            self.main_columns, sql.Route(self.route, True)),
            ]  # fmt: skip
        side = stage_table(self.side_rows(), self.side_uri, self.partition, self.owner)
        main_folder = f"{self.route}={_NULL_PARTITION}"
        main = join(self.staged, main_folder)
        fs, folder = _fs(self.spark, self.staged)
        for child in fs.listStatus(folder):  # the side rows' folders, now rewritten; _SUCCESS
            if child.getPath().getName() != main_folder:
                fs.delete(child.getPath(), True)
        if not fs.exists(_fs(self.spark, main)[1]):  # every row went to the side table
            empty = local_frame(self.spark, [], self._in_files(self.route))
            empty.write.mode("overwrite").parquet(main)
        main_table = StagedTable(self.spark, self.main_uri, self.partition, main)
        return [side, main_table]

    def discard(self) -> None:
        bq = self._bigquery()
        if bq:
            _bigquery_client(bq.project).delete_table(self.staged, not_found_ok=True)
        else:
            discard(self.spark, self.staged)


def stage_split(
    df: DataFrame,
    route: str,
    main_uri: str,
    side_uri: str,
    side_columns: Sequence[str],
    partition: dict[str, str],
    owner: str = "",
) -> StagedSplit:
    """Write one run's rows for two tables in a single pass over ``df`` (see ``StagedSplit``),
    staged under the ``owner`` attempt's names. A write that fails leaves nothing staged."""
    bq = bigquery_table(main_uri)
    if bq:
        staged = _stage_bigquery(df, bq, partition, owner)
    else:
        staged = staging_uri(join(normalize(main_uri), partition_path(partition)), owner)
        try:
            writer = df.drop(*partition).write.mode("overwrite").partitionBy(route)
            writer.format("parquet").save(staged)
        except BaseException:
            discard(df.sparkSession, staged)
            raise
    split = (main_uri, side_uri, route, tuple(side_columns), partition, staged)
    return StagedSplit(df.sparkSession, *split, df.schema, owner)


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


def _commit_bigquery(tables: Sequence[StagedTable], targets: Sequence[BigQueryTable]) -> None:
    """Create the tables if needed (or add the run's key columns an older table lacks), swap
    the run's rows of all of them in one transaction, drop the staging tables."""
    runs = {tuple(t.partition.items()) for t in tables}
    if len(runs) != 1 or len({t.project for t in targets}) != 1:
        raise ValueError("tables committed together must be of one run and one project")
    client = _bigquery_client(targets[0].project)
    stagings = [bigquery_table(f"bq://{t.staged}") for t in tables]
    keys = list(tables[0].partition)
    try:
        for target, staging, table in zip(targets, stagings, tables, strict=True):
            client.query(sql.create_table_sql(target, staging, keys, table.columns)).result()
            client.query(sql.add_keys_sql(target, keys)).result()
        replace = sql.transaction_sql([
            sql.replace_rows_sql(target, staging, keys, table.columns, table.route)
            for target, staging, table in zip(targets, stagings, tables, strict=True)
        ])  # fmt: skip
        config = sql.query_config(sql.key_parameters(tables[0].partition))
        retry_concurrent(lambda: client.query(replace, job_config=config).result())
    finally:
        for name in dict.fromkeys(s.name for s in stagings):
            client.delete_table(name, not_found_ok=True)
    log.info("wrote %s for %s", ", ".join(t.name for t in targets), tables[0].partition)
