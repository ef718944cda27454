"""Read the raw churn CSV with an explicit schema, refusing files that break the contract."""

from __future__ import annotations

import re

from pyspark.sql import DataFrame, SparkSession

from churn_ml import storage
from churn_ml.cli import InputError
from churn_ml.schema import RAW_SCORE_COLUMNS, RAW_TRAIN_COLUMNS, raw_schema

_MALFORMED_RECORD = re.compile(r"Malformed CSV record: (.*?)(?:\s+SQLSTATE: \w+)?$", re.MULTILINE)


def malformed_input(err: Exception) -> InputError | None:
    """The InputError for a FAILFAST read that met a line that is not a CSV record, else None.

    Quotes the record, not the first lines of the Java stack trace that hold it.
    """
    text = str(err)
    if "Malformed" not in text and "MALFORMED" not in text:
        return None
    record = _MALFORMED_RECORD.search(text)
    example = record.group(1)[:200] if record else text[:300]
    return InputError(f"the input has malformed CSV lines, e.g. {example!r}")


def check_header(header: str | None, with_label: bool) -> None:
    """Name what is wrong with a header line: empty input, not CSV, missing or extra columns."""
    if header is None:
        raise InputError("the input is empty: no header line")
    looks_like_json = header.lstrip().startswith(("{", "["))  # JSON lines have commas too
    if looks_like_json or "\x00" in header or "\ufffd" in header or "," not in header:
        raise InputError(
            f"the input is not a comma-separated CSV file (first line: {header[:80]!r})"
        )
    expected = RAW_TRAIN_COLUMNS if with_label else RAW_SCORE_COLUMNS
    found = [c.strip().strip('"') for c in header.split(",")]
    missing = [c for c in expected if c not in found]
    extra = [c for c in found if c not in expected]
    problems = []
    if missing:
        problems.append(f"missing columns {missing}")
    if extra:
        problems.append(f"unexpected columns {extra}")
    if len(set(found)) != len(found):
        problems.append("duplicate column names")
    if problems:
        raise InputError("the CSV header does not match the churn schema: " + "; ".join(problems))


def read(spark: SparkSession, uri: str, with_label: bool) -> DataFrame:
    """The raw rows as strings, columns in the file's order; malformed lines fail the read."""
    path = storage.normalize(uri)
    if not storage.exists(spark, path):
        raise InputError(f"input {uri} does not exist")
    first = spark.read.text(path).limit(1).collect()
    header = first[0][0] if first else None
    check_header(header, with_label)
    order = [c.strip().strip('"') for c in header.split(",")]
    return spark.read.csv(
        path, header=True, schema=raw_schema(order), mode="FAILFAST", enforceSchema=False
    )
