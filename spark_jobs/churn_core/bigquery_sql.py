"""The BigQuery tables of a run: their names and every SQL statement run on them (pure Python).

Tables are partitioned by day on ``pipeline_execution_dt`` and clustered by ``pipeline_id``.
A run's COUNT filters on both and reads only that run's rows; its DELETE filters on the run's
keys alone (clustering prunes it to the run's blocks), so a ``pipeline_id`` reused with another
day replaces its rows, as the run's folder is replaced on a filesystem. The Spark jobs
(``storage``) and the DAG side (the scoring check) build their SQL here; values are always
query parameters, never pasted into the SQL.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

PARTITION_COLUMN = "pipeline_execution_dt"
CLUSTER_COLUMN = "pipeline_id"
STAGING_EXPIRATION_HOURS = 24  # a staging table that outlives its job goes away by itself

_BQ_TABLE = re.compile(r"^bq://([a-z][a-z0-9-]{4,28}[a-z0-9])\.(\w{1,1024})\.([\w-]{1,1024})$")


@dataclass(frozen=True)
class BigQueryTable:
    project: str
    dataset: str
    table: str

    @property
    def name(self) -> str:
        return f"{self.project}.{self.dataset}.{self.table}"

    @property
    def quoted(self) -> str:
        return f"`{self.name}`"


def bigquery_table(uri: str) -> BigQueryTable | None:
    """Parse ``bq://project.dataset.table``; None for a filesystem URI."""
    if not uri.startswith("bq://"):
        return None
    match = _BQ_TABLE.fullmatch(uri)  # not match(): "$" also matches before a final "\n"
    if not match:
        raise ValueError(f"bad BigQuery URI {uri!r}: expected bq://project.dataset.table")
    return BigQueryTable(*match.groups())


def staging_table(target: BigQueryTable, keys: Mapping[str, str]) -> BigQueryTable:
    """Where one run's rows wait for the transaction; one name per table and run."""
    suffix = re.sub(r"\W", "_", "_".join(keys.values()))
    return BigQueryTable(target.project, target.dataset, f"_staging_{target.table}_{suffix}")


def _filter(columns: Sequence[str]) -> str:
    return " AND ".join(f"{column} = @{column}" for column in columns)


def _run_filter(keys: Sequence[str]) -> str:
    """The run's rows on its day: the day first (partition pruning), then the keys."""
    return _filter((PARTITION_COLUMN, *keys))


def create_table_sql(
    target: BigQueryTable, staging: BigQueryTable, keys: Sequence[str], columns: Sequence[str]
) -> str:
    """Create the table, if missing, with the staged columns' types. Outside any transaction:
    BigQuery allows no DDL on permanent tables inside one."""
    clustering = ", ".join(dict.fromkeys((CLUSTER_COLUMN, *keys)))
    return (
        f"CREATE TABLE IF NOT EXISTS {target.quoted} "
        f"PARTITION BY {PARTITION_COLUMN} CLUSTER BY {clustering} "
        f"AS SELECT {', '.join(columns)} FROM {staging.quoted} WHERE FALSE"
    )


def add_keys_sql(target: BigQueryTable, keys: Sequence[str]) -> str:
    """Add the run's key columns a table created before them lacks (its rows get NULL)."""
    added = ", ".join(f"ADD COLUMN IF NOT EXISTS {key} STRING" for key in keys)
    return f"ALTER TABLE {target.quoted} {added}"


def expire_sql(staging: BigQueryTable) -> str:
    return (
        f"ALTER TABLE {staging.quoted} SET OPTIONS (expiration_timestamp = "
        f"TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL {STAGING_EXPIRATION_HOURS} HOUR))"
    )


@dataclass(frozen=True)
class Route:
    """Which staged rows belong to a table when one staging table feeds two: those whose
    ``column`` is null, or those where it is not."""

    column: str
    null: bool

    @property
    def condition(self) -> str:
        return f"{self.column} IS {'' if self.null else 'NOT '}NULL"


def replace_rows_sql(
    target: BigQueryTable,
    staging: BigQueryTable,
    keys: Sequence[str],
    columns: Sequence[str],
    route: Route | None = None,
) -> str:
    """The statements that swap a run's rows for the staged ones, columns matched by name;
    run them inside ``transaction_sql``."""
    names = ", ".join(columns)
    rows = f" WHERE {route.condition}" if route else ""
    return (
        f"DELETE FROM {target.quoted} WHERE {_filter(keys)};\n"
        f"INSERT INTO {target.quoted} ({names}) SELECT {names} FROM {staging.quoted}{rows};"
    )


def transaction_sql(statements: Sequence[str]) -> str:
    """One transaction over the statements: every table changes, or none does."""
    return "\n".join(("BEGIN TRANSACTION;", *statements, "COMMIT TRANSACTION;"))


def count_rows_sql(target: BigQueryTable, keys: Sequence[str]) -> str:
    return f"SELECT COUNT(*) FROM {target.quoted} WHERE {_run_filter(keys)}"


def key_parameters(keys: Mapping[str, str]) -> list[tuple[str, str, object]]:
    """(name, BigQuery type, value) of the query parameters of ``replace_rows_sql``."""
    return [(k, "STRING", v) for k, v in keys.items()]


def run_parameters(keys: Mapping[str, str], day: dt.date) -> list[tuple[str, str, object]]:
    """The query parameters of ``count_rows_sql``."""
    return [(PARTITION_COLUMN, "DATE", day), *key_parameters(keys)]


def query_config(parameters: Sequence[tuple[str, str, object]]):
    """A ``QueryJobConfig`` with these parameters (google-cloud-bigquery, imported here only)."""
    from google.cloud import bigquery

    return bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter(*p) for p in parameters]
    )
