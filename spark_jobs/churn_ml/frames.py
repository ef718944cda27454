"""Small DataFrames from Python rows, as local relations.

``spark.createDataFrame(list)`` makes a Python RDD: each query on it starts Python workers,
about 0.15 s a query on two cores. Handed over as an Arrow table, the rows are a local relation
in the plan, and a query on them takes milliseconds (docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import StructType


def local_frame(
    spark: SparkSession, rows: Iterable[Sequence], schema: str | StructType
) -> DataFrame:
    """``rows`` (tuples in the schema's column order) under ``schema`` (DDL or a StructType)."""
    struct = schema if isinstance(schema, StructType) else StructType.fromDDL(schema)
    records = [dict(zip(struct.names, row, strict=True)) for row in rows]
    return spark.createDataFrame(pa.Table.from_pylist(records, schema=to_arrow_schema(struct)))
