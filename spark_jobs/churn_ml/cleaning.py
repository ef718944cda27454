"""Pure transforms from the raw churn CSV to the cleaned, typed training and scoring rows."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from churn_ml.schema import (
    INTEGER_COLUMNS,
    INTERNET_SERVICE_COLUMNS,
    LABEL,
    LABEL_VALUES,
    NUMERIC_FEATURES,
    RAW_TO_CLEAN,
    TENURE_BINS,
    TENURE_TOP_BIN,
)

REJECT_REASON = "reject_reason"
_NUMBER_TYPES = {**{c: "int" for c in INTEGER_COLUMNS}, **{c: "double" for c in NUMERIC_FEATURES}}


def _blank_to_null(column: Column) -> Column:
    trimmed = F.trim(column)
    return F.when(trimmed == "", None).otherwise(trimmed)


def parse(raw: DataFrame) -> DataFrame:
    """snake_case names, trimmed strings, numbers parsed with try_cast, lower-case label.

    Adds ``reject_reason``: null for a usable row, else why it cannot be used (the first
    missing or non-numeric field). The label is not judged here: see ``invalid_labels``.
    """
    columns, reasons = [], []
    for raw_name in raw.columns:
        name = RAW_TO_CLEAN[raw_name]
        text = _blank_to_null(F.col(f"`{raw_name}`"))
        if name == LABEL:
            columns.append(F.lower(text).alias(name))
            continue
        value = text.try_cast(_NUMBER_TYPES[name]) if name in _NUMBER_TYPES else text
        if name in NUMERIC_FEATURES:  # "NaN" parses as a double; no model can use it
            value = F.when(~F.isnan(value), value)
        columns.append(value.alias(name))
        reasons.append(F.when(text.isNull(), F.lit(f"missing {name}")))
        if name in _NUMBER_TYPES:
            reasons.append(F.when(value.isNull(), F.lit(f"non-numeric {name}")))
    return raw.select(*columns, F.coalesce(*reasons).alias(REJECT_REASON))


def invalid_labels(parsed: DataFrame) -> Column:
    """True where the label is not one of yes/no (a contract breach, not a droppable row)."""
    return F.col(LABEL).isNull() | ~F.col(LABEL).isin(*LABEL_VALUES)


def tenure_group(tenure: Column) -> Column:
    bins = F.when(tenure <= TENURE_BINS[0][0], TENURE_BINS[0][1])
    for upper, label in TENURE_BINS[1:]:
        bins = bins.when(tenure <= upper, label)
    return bins.otherwise(TENURE_TOP_BIN)


def clean(parsed: DataFrame) -> DataFrame:
    """Usable rows only, with the lab's recoding: 'No internet service' -> 'No' and tenure bins."""
    recoded = {
        c: F.when(F.col(c) == "No internet service", "No").otherwise(F.col(c))
        for c in INTERNET_SERVICE_COLUMNS
    }
    return (
        parsed.where(F.col(REJECT_REASON).isNull())
        .drop(REJECT_REASON)
        .withColumns(recoded)
        .withColumn("tenure_group", tenure_group(F.col("tenure")))
    )


def rejects(parsed: DataFrame) -> DataFrame:
    return parsed.where(F.col(REJECT_REASON).isNotNull())


def with_lineage(df: DataFrame, pipeline_id: str, execution_dt: dt.date) -> DataFrame:
    return df.withColumns(
        {"pipeline_id": F.lit(pipeline_id), "pipeline_execution_dt": F.lit(execution_dt)}
    )
