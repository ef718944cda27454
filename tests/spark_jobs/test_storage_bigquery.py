"""The BigQuery commit of a staged run: the exact jobs sent, in order, to a stand-in client.

No BigQuery here: ``google.cloud.bigquery.Client`` is replaced by a recorder that answers like
the client, and every statement it receives must parse in BigQuery's dialect.
"""

from __future__ import annotations

import pytest
import sqlglot
from google.api_core.exceptions import BadRequest, Forbidden
from google.cloud import bigquery

from churn_core import bigquery_sql
from churn_ml import storage

URI = "bq://my-project.customer_churn_ds.batch_rejects"
TARGET = bigquery_sql.bigquery_table(URI)
RUN = {"pipeline_id": "20261129"}
STAGING = bigquery_sql.staging_table(TARGET, RUN)
COLUMNS = ("customer_id", "reject_reason", "pipeline_id", "pipeline_execution_dt")
CONCURRENT = BadRequest(
    "Transaction is aborted due to concurrent update against table "
    "my-project.customer_churn_ds.batch_rejects. Transaction ID: 1a2b"
)


class Job:
    def __init__(self, rows, error):
        self.rows, self.error = rows, error

    def result(self):
        if self.error:
            raise self.error
        return iter(self.rows)


class RecordingClient:
    """Records every job; ``answers`` maps a statement's first word to results or errors."""

    def __init__(self, answers: dict[str, list]):
        self.answers = answers
        self.calls: list[tuple] = []

    def __call__(self, project: str):
        assert project == "my-project"
        return self

    def query(self, sql: str, job_config=None):
        sqlglot.parse(sql, read="bigquery", error_level=sqlglot.ErrorLevel.RAISE)
        parameters = [
            (p.name, p.type_, p.value) for p in (job_config.query_parameters if job_config else [])
        ]
        self.calls.append(("query", sql, parameters))
        queue = self.answers.get(sql.split()[0], [])
        answer = queue.pop(0) if queue else []
        if isinstance(answer, Exception):
            return Job([], answer)
        return Job(answer, None)

    def delete_table(self, name: str, not_found_ok: bool = False):
        self.calls.append(("delete_table", name, not_found_ok))


@pytest.fixture
def client(monkeypatch):
    def install(**answers) -> RecordingClient:
        recorder = RecordingClient(answers)
        monkeypatch.setattr(bigquery, "Client", recorder)
        monkeypatch.setattr(storage.time, "sleep", lambda s: recorder.calls.append(("sleep", s)))
        return recorder

    return install


def staged() -> storage.StagedTable:
    return storage.StagedTable(None, URI, RUN, STAGING.name, COLUMNS)


def prepare(target, staging, columns) -> list[tuple]:
    """The DDL before the transaction: create the table, add keys an older table lacks."""
    return [
        ("query", bigquery_sql.create_table_sql(target, staging, ["pipeline_id"], columns), []),
        ("query", bigquery_sql.add_keys_sql(target, ["pipeline_id"]), []),
    ]


CREATE = prepare(TARGET, STAGING, COLUMNS)
PARAMETERS = [("pipeline_id", "STRING", "20261129")]
REPLACE = (
    "query",
    bigquery_sql.transaction_sql(
        [bigquery_sql.replace_rows_sql(TARGET, STAGING, ["pipeline_id"], COLUMNS)]
    ),
    PARAMETERS,
)
DROP = ("delete_table", STAGING.name, True)


def test_commit_creates_the_table_outside_the_transaction_then_drops_the_staging(client):
    recorder = client()
    staged().commit()
    assert recorder.calls == [*CREATE, REPLACE, DROP]


def test_a_run_reused_with_another_day_replaces_its_rows_as_on_a_filesystem(client):
    """The DELETE filters on the run's keys, not its day: nothing of the run stays beside the
    new rows."""
    recorder = client()
    staged().commit()
    delete = sqlglot.parse(recorder.calls[2][1], read="bigquery")[1]
    assert isinstance(delete, sqlglot.exp.Delete)
    assert [c.name for c in delete.find(sqlglot.exp.Where).find_all(sqlglot.exp.Column)] == [
        "pipeline_id"
    ]


def test_a_transaction_cancelled_for_concurrent_dml_is_run_again(client):
    recorder = client(BEGIN=[CONCURRENT, CONCURRENT])
    staged().commit()
    assert recorder.calls == [*CREATE, REPLACE, ("sleep", 2), REPLACE, ("sleep", 4), REPLACE, DROP]


def test_concurrent_dml_that_never_stops_fails_the_commit_after_its_attempts(client):
    recorder = client(BEGIN=[CONCURRENT] * storage.TRANSACTION_ATTEMPTS)
    with pytest.raises(BadRequest, match="concurrent update"):
        staged().commit()
    assert recorder.calls.count(REPLACE) == storage.TRANSACTION_ATTEMPTS
    assert recorder.calls[-1] == DROP


def test_any_other_failure_is_not_retried_and_the_staging_is_dropped(client):
    recorder = client(BEGIN=[Forbidden("Access Denied: Table batch_rejects")])
    with pytest.raises(Forbidden):
        staged().commit()
    assert recorder.calls == [*CREATE, REPLACE, DROP]


def test_discard_drops_the_staging_table(client):
    recorder = client()
    staged().discard()
    assert recorder.calls == [DROP]


# --- Tables committed together --------------------------------------------------------------

PREDICTIONS = "bq://my-project.customer_churn_ds.batch_predictions"
DRIFT = "bq://my-project.customer_churn_ds.feature_drift"
SCORED = ("customer_id", "prediction", "pipeline_id", "pipeline_execution_dt")


def split(spark=None) -> storage.StagedSplit:
    """Predictions and rejects staged by one write into one staging table."""
    from pyspark.sql.types import StringType, StructField, StructType

    schema = StructType(
        [StructField(c, StringType()) for c in (*SCORED[:2], "reject_reason", *SCORED[2:])]
    )
    staging = bigquery_sql.staging_table(bigquery_sql.bigquery_table(PREDICTIONS), RUN)
    return storage.StagedSplit(
        spark, PREDICTIONS, URI, "reject_reason", COLUMNS, RUN, staging.name, schema
    )


def test_one_staging_table_feeds_two_tables_in_one_transaction_with_a_third(client):
    recorder = client()
    routed = split()
    drift = storage.StagedTable(None, DRIFT, RUN, "my-project.customer_churn_ds._staging_fd",
                                ("feature", "pipeline_id"))  # fmt: skip
    rejects, predictions = routed.tables()
    assert predictions.columns == SCORED  # every column but the route
    storage.commit_all([rejects, drift, predictions])

    shared = bigquery_sql.bigquery_table(f"bq://{routed.staged}")
    drift_staging = bigquery_sql.bigquery_table(f"bq://{drift.staged}")
    targets = [TARGET, *(bigquery_sql.bigquery_table(u) for u in (DRIFT, PREDICTIONS))]
    stagings = [shared, drift_staging, shared]
    columns = [COLUMNS, drift.columns, SCORED]
    routes = [
        bigquery_sql.Route("reject_reason", False),
        None,
        bigquery_sql.Route("reject_reason", True),
    ]
    creates = [
        call
        for t, st, c in zip(targets, stagings, columns, strict=True)
        for call in prepare(t, st, c)
    ]
    transaction = bigquery_sql.transaction_sql([
        bigquery_sql.replace_rows_sql(t, st, ["pipeline_id"], c, r)
        for t, st, c, r in zip(targets, stagings, columns, routes, strict=True)
    ])  # fmt: skip
    assert recorder.calls == [
        *creates,
        ("query", transaction, PARAMETERS),
        ("delete_table", shared.name, True),
        ("delete_table", drift_staging.name, True),
    ]
    assert transaction.count("BEGIN TRANSACTION") == 1


def test_a_failed_transaction_changes_no_table_and_drops_every_staging_table(client):
    recorder = client(BEGIN=[Forbidden("Access Denied: Table batch_rejects")])
    with pytest.raises(Forbidden):
        storage.commit_all(split().tables())
    queries = [c for c in recorder.calls if c[0] == "query"]
    assert len([q for q in queries if "BEGIN TRANSACTION" in q[1]]) == 1  # the only DML
    assert recorder.calls[-1] == ("delete_table", split().staged, True)


def test_tables_of_different_runs_are_not_committed_together(client):
    recorder = client()
    other = storage.StagedTable(None, DRIFT, {"pipeline_id": "20261130"}, "p.d._s", ("a",))
    with pytest.raises(ValueError, match="one run"):
        storage.commit_all([*split().tables(), other])
    assert recorder.calls == []


def test_discarding_a_split_drops_its_staging_table(client):
    recorder = client()
    split().discard()
    assert recorder.calls == [("delete_table", split().staged, True)]
