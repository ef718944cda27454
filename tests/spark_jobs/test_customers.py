"""One record per customer: copies merge, conflicting rows become one reject, and the counts."""

from __future__ import annotations

from churn_ml import cleaning, customers
from churn_ml.schema import RAW_TRAIN_COLUMNS
from tests.spark_jobs.test_cleaning import raw_rows

HEADER = {c: c for c in RAW_TRAIN_COLUMNS}


def records(spark, *overrides: dict) -> dict:
    """customer_id -> (reject_reason, source_rows) of the one_per_customer records."""
    out = customers.one_per_customer(cleaning.parse(raw_rows(spark, *overrides))).collect()
    got: dict = {}
    for r in out:
        got.setdefault(r.customer_id, []).append((r.reject_reason, r.source_rows))
    return {k: sorted(v, key=str) for k, v in got.items()}


def test_exact_copies_are_one_record(spark):
    got = records(spark, {"customerID": "a"}, {"customerID": "a"}, {"customerID": " a "})
    assert got == {"a": [(None, 3)]}  # the same row once trimmed


def test_two_different_rows_of_one_customer_are_one_reject(spark):
    got = records(
        spark, {"customerID": "a"}, {"customerID": "a", "tenure": "13"}, {"customerID": "b"}
    )
    assert got == {"a": [(cleaning.CONFLICTING_ROWS, 2)], "b": [(None, 1)]}


def test_a_conflict_wins_over_the_rows_own_reasons(spark):
    got = records(spark, {"customerID": "a"}, {"customerID": "a", "TotalCharges": " "})
    assert got == {"a": [(cleaning.CONFLICTING_ROWS, 2)]}


def test_a_conflict_keeps_the_same_row_whatever_the_input_order(spark):
    rows = [{"customerID": "a", "tenure": str(t), "TotalCharges": str(t * 30)} for t in (5, 9, 7)]
    kept = {
        customers.one_per_customer(cleaning.parse(raw_rows(spark, *order))).first().tenure
        for order in (rows, rows[::-1], rows[1:] + rows[:1])
    }
    assert len(kept) == 1


def test_rows_without_customer_id_stand_alone(spark):
    got = records(
        spark,
        {"customerID": "", "tenure": "1", "TotalCharges": "29.85"},
        {"customerID": "", "tenure": "2", "TotalCharges": "59.7"},
        {"customerID": "", "tenure": "2", "TotalCharges": "59.7"},
    )
    assert got == {None: [("missing customer_id", 1), ("missing customer_id", 2)]}


def test_repeated_header_lines_are_one_record_no_customer(spark):
    got = records(spark, {"customerID": "a"}, HEADER, HEADER)
    assert got == {"a": [(None, 1)], "customerID": [(cleaning.REPEATED_HEADER, 2)]}


def test_tally_counts_rows_customers_and_rejects(spark):
    parsed = cleaning.parse(
        raw_rows(
            spark,
            {"customerID": "a"},
            {"customerID": "a"},  # a copy
            {"customerID": "b"},
            {"customerID": "b", "tenure": "13"},  # b conflicts
            {"customerID": "c", "TotalCharges": " "},
            HEADER,
        )
    )
    tally = customers.one_per_customer(parsed).agg(*customers.tally()).first().asDict()
    assert tally == {"rows_in": 5, "repeated_headers": 1, "customers_in": 3, "rejected": 2}
