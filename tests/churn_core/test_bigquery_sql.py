"""The SQL run on BigQuery: every statement parses in BigQuery's dialect and says what we mean."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlglot
from sqlglot import exp

from churn_core import bigquery_sql

TARGET = bigquery_sql.BigQueryTable("my-project", "customer_churn_ds", "test_predictions")
RUN = {"operation": "training", "pipeline_id": "20261129-manual-0300"}
STAGING = bigquery_sql.staging_table(TARGET, RUN)
COLUMNS = ("customer_id", "label", "prediction", "pipeline_id", "pipeline_execution_dt")
DAY = dt.date(2026, 11, 29)


def parse(sql: str) -> list[exp.Expression]:
    """Every statement of ``sql`` in BigQuery's dialect; a syntax error raises."""
    return sqlglot.parse(sql, read="bigquery", error_level=sqlglot.ErrorLevel.RAISE)


def only(sql: str) -> exp.Expression:
    (statement,) = parse(sql)
    return statement


def where_columns(statement: exp.Expression) -> dict[str, str]:
    """column = @parameter pairs of the statement's WHERE."""
    where = statement.find(exp.Where)
    return {eq.this.name: eq.expression.name for eq in where.find_all(exp.EQ)}


def test_the_parser_refuses_broken_sql():  # so that the checks below can fail
    with pytest.raises(sqlglot.errors.ParseError):
        parse("INSERT INTO `p.d.t` (a, b) SELECT FROM")


def test_staging_table_is_one_per_table_and_run():
    assert STAGING.name == (
        "my-project.customer_churn_ds._staging_test_predictions_training_20261129_manual_0300"
    )
    other = bigquery_sql.staging_table(TARGET, {**RUN, "pipeline_id": "20261130"})
    assert other != STAGING


def test_create_table_is_partitioned_clustered_idempotent_and_of_the_staged_columns():
    sql = bigquery_sql.create_table_sql(TARGET, STAGING, list(RUN), COLUMNS)
    assert sql == (
        "CREATE TABLE IF NOT EXISTS `my-project.customer_churn_ds.test_predictions` "
        "PARTITION BY pipeline_execution_dt CLUSTER BY pipeline_id, operation "
        f"AS SELECT {', '.join(COLUMNS)} FROM `{STAGING.name}` WHERE FALSE"
    )
    create = only(sql)
    assert isinstance(create, exp.Create) and create.args["exists"]
    select = create.expression
    assert [c.name for c in select.expressions] == list(COLUMNS)  # no column of another table
    assert select.find(exp.Table).sql("bigquery") == f"`{STAGING.name}`"
    assert isinstance(select.args["where"].this, exp.Boolean)  # copies no row
    assert create.find(exp.PartitionedByProperty).this.name == "pipeline_execution_dt"
    assert [c.name for c in create.find(exp.ClusterProperty).expressions] == [
        "pipeline_id",
        "operation",
    ]


def test_a_table_keyed_by_pipeline_id_alone_is_clustered_by_it_once():
    sql = bigquery_sql.create_table_sql(TARGET, STAGING, ["pipeline_id"], COLUMNS)
    assert [c.name for c in only(sql).find(exp.ClusterProperty).expressions] == ["pipeline_id"]


def test_staging_tables_expire():
    alter = only(bigquery_sql.expire_sql(STAGING))
    assert isinstance(alter, exp.Alter)
    assert alter.this.sql("bigquery") == f"`{STAGING.name}`"
    assert "expiration_timestamp" in alter.sql("bigquery")
    assert "INTERVAL '24' HOUR" in alter.sql("bigquery")


def test_older_tables_get_the_run_keys_they_lack():
    alter = only(bigquery_sql.add_keys_sql(TARGET, list(RUN)))
    assert isinstance(alter, exp.Alter) and alter.this.sql("bigquery") == TARGET.quoted
    added = alter.args["actions"]
    assert [(c.name, c.args["exists"], c.args["kind"].sql("bigquery")) for c in added] == [
        ("operation", True, "STRING"),
        ("pipeline_id", True, "STRING"),
    ]


def test_replace_rows_deletes_every_row_of_the_run_keys_with_named_columns():
    sql = bigquery_sql.transaction_sql(
        [bigquery_sql.replace_rows_sql(TARGET, STAGING, list(RUN), COLUMNS)]
    )
    begin, delete, insert, commit = parse(sql)
    assert isinstance(begin, exp.Transaction) and isinstance(commit, exp.Commit)
    assert isinstance(delete, exp.Delete)
    assert delete.this.sql("bigquery") == f"`{TARGET.name}`"
    assert where_columns(delete) == {"operation": "operation", "pipeline_id": "pipeline_id"}
    assert isinstance(insert, exp.Insert)
    assert [c.name for c in insert.this.expressions] == list(COLUMNS)  # INSERT INTO t (...)
    select = insert.expression
    assert [c.name for c in select.expressions] == list(COLUMNS)  # not SELECT *
    assert select.find(exp.Table).sql("bigquery") == f"`{STAGING.name}`"
    assert select.args.get("where") is None  # every staged row


def test_two_tables_fed_by_one_staging_table_change_in_one_transaction():
    rejects = bigquery_sql.BigQueryTable("my-project", "customer_churn_ds", "batch_rejects")
    routes = [bigquery_sql.Route("reject_reason", null=n) for n in (True, False)]
    sql = bigquery_sql.transaction_sql([
        bigquery_sql.replace_rows_sql(TARGET, STAGING, list(RUN), COLUMNS, routes[0]),
        bigquery_sql.replace_rows_sql(rejects, STAGING, list(RUN), ("customer_id",), routes[1]),
    ])  # fmt: skip
    statements = parse(sql)
    assert [type(s) for s in statements] == [
        exp.Transaction, exp.Delete, exp.Insert, exp.Delete, exp.Insert, exp.Commit
    ]  # fmt: skip
    inserts = [s for s in statements if isinstance(s, exp.Insert)]
    assert [i.this.this.sql("bigquery") for i in inserts] == [TARGET.quoted, rejects.quoted]
    wheres = [i.expression.args["where"].this for i in inserts]
    assert isinstance(wheres[0], exp.Is) and wheres[0].this.name == "reject_reason"
    assert isinstance(wheres[1], exp.Not) and isinstance(wheres[1].this, exp.Is)


def test_count_is_pruned_to_the_day():
    count = only(bigquery_sql.count_rows_sql(TARGET, ["pipeline_id"]))
    assert isinstance(count, exp.Select)
    assert count.find(exp.Count) is not None
    assert where_columns(count) == {
        "pipeline_execution_dt": "pipeline_execution_dt",
        "pipeline_id": "pipeline_id",
    }


def test_each_statement_s_parameters_bind_its_every_placeholder():
    for sql, parameters in (
        (bigquery_sql.replace_rows_sql(TARGET, STAGING, list(RUN), COLUMNS),
         bigquery_sql.key_parameters(RUN)),
        (bigquery_sql.count_rows_sql(TARGET, list(RUN)), bigquery_sql.run_parameters(RUN, DAY)),
    ):  # fmt: skip
        placeholders = {p.name for s in parse(sql) for p in s.find_all(exp.Parameter)}
        assert placeholders == {name for name, _, _ in parameters}
    assert bigquery_sql.run_parameters(RUN, DAY) == [
        ("pipeline_execution_dt", "DATE", DAY),
        ("operation", "STRING", "training"),
        ("pipeline_id", "STRING", "20261129-manual-0300"),
    ]


def test_query_config_carries_typed_parameters():
    config = bigquery_sql.query_config(bigquery_sql.run_parameters({"pipeline_id": "p1"}, DAY))
    assert [(p.name, p.type_, p.value) for p in config.query_parameters] == [
        ("pipeline_execution_dt", "DATE", DAY),
        ("pipeline_id", "STRING", "p1"),
    ]
