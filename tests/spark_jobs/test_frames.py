"""Small DataFrames from Python rows are local relations with the schema's types."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Row

from churn_ml.frames import local_frame


def test_rows_keep_their_types_and_nulls_in_a_local_relation(spark):
    day = dt.date(2026, 11, 29)
    df = local_frame(
        spark, [("a", 1, 1.5, day), (None, None, None, None)], "s string, i int, x double, d date"
    )
    assert df.dtypes == [("s", "string"), ("i", "int"), ("x", "double"), ("d", "date")]
    assert df.collect() == [Row(s="a", i=1, x=1.5, d=day), Row(s=None, i=None, x=None, d=None)]
    assert df._jdf.queryExecution().analyzed().toString().startswith("LocalRelation")


def test_no_rows_is_an_empty_frame_with_the_schema(spark):
    df = local_frame(spark, [], "feature string, psi double")
    assert (df.columns, df.count()) == (["feature", "psi"], 0)
