"""What training and tuning publish: the pure pieces (the jobs' tests cover the rest)."""

from __future__ import annotations

import datetime as dt

from pyspark.testing import assertDataFrameEqual

from churn_ml import publish
from churn_ml.frames import local_frame


def test_test_predictions_keeps_typed_columns(spark):
    predictions = local_frame(
        spark,
        [
            ("a", 1.0, 1.0, 0.8, "x"),
            ("b", 0.0, 1.0, 0.6, "y"),
        ],
        "customer_id string, label double, prediction double, churn_probability double, "
        "gender string",
    )
    expected = local_frame(
        spark,
        [("a", 1, 1, 0.8), ("b", 0, 1, 0.6)],
        "customer_id string, label int, prediction int, churn_probability double",
    )
    assertDataFrameEqual(publish.test_predictions(predictions), expected)


def test_metric_rows(spark):
    got = publish.metric_rows(spark, {"au_pr": 0.61, "accuracy": 1})
    expected = local_frame(
        spark, [("accuracy", 1.0), ("au_pr", 0.61)], "metric_name string, metric_value double"
    )
    assertDataFrameEqual(got, expected, checkRowOrder=True)


def test_a_model_versions_rows_are_its_own_partition():
    """Keyed by attempt too: a clear or re-run of the day never rewrites a version's rows."""
    day = dt.date(2026, 11, 29)
    target = publish.RunTarget("p1", day, "training", "k7f2q-2", "/w", "/m", "/x")
    assert target.partition == {"operation": "training", "pipeline_id": "p1", "attempt": "k7f2q-2"}
