"""Read the raw churn CSV with an explicit schema, refusing files that break the contract."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from pyspark.sql import DataFrame, SparkSession

from churn_ml import storage
from churn_ml.cleaning import MISPLACED_HEADER
from churn_ml.cli import InputError
from churn_ml.schema import RAW_SCORE_COLUMNS, RAW_TRAIN_COLUMNS, raw_schema

_MALFORMED_RECORD = re.compile(r"Malformed CSV record: (.*?)(?:\s+SQLSTATE: \w+)?$", re.MULTILINE)
_MISPLACED_HEADER = re.compile(re.escape(MISPLACED_HEADER) + r".*?'(?=\s|$)", re.DOTALL)
_PART_HEADER = re.compile(r"CSV header does not conform to the schema.*?CSV file: (\S+)", re.DOTALL)
HEADER_LINE_LIMIT = 1 << 16  # bytes: a header is short; binary input has no line end
BYTE_ORDER_MARK = "\ufeff"  # what Excel's "CSV UTF-8" writes first; Spark's reader skips it
_COMPRESSED = {"\x1f\ufffd": "gzip", "BZh": "bzip2", "PK\x03\x04": "zip", "(\ufffd/\ufffd": "zstd"}


def malformed_input(err: Exception) -> InputError | None:
    """The InputError for a read that met a line it cannot take as a CSV record, else None.

    Malformed lines (FAILFAST), a header repeated in another column order, and a part of a
    folder whose header differs from the first part's. Quotes the record or names the file,
    not the first lines of the Java stack trace that hold them.
    """
    text = str(err)
    misplaced = _MISPLACED_HEADER.search(text)
    if misplaced:
        return InputError(misplaced.group(0))
    part = _PART_HEADER.search(text)
    if part:
        return InputError(
            f"the CSV header of {part.group(1)} lists the columns in another order than the "
            "input's first file"
        )
    if "Malformed" not in text and "MALFORMED" not in text:
        return None
    record = _MALFORMED_RECORD.search(text)
    example = record.group(1)[:200] if record else text[:300]
    return InputError(f"the input has malformed CSV lines, e.g. {example!r}")


T = TypeVar("T")


def reading(action: Callable[[], T]) -> T:
    """``action()``, the Spark action that first reads the rows, with ``malformed_input``."""
    try:
        return action()
    except Exception as err:
        malformed = malformed_input(err)
        if malformed:
            raise malformed from err
        raise


def check_header(header: str | None, with_label: bool) -> None:
    """Name what is wrong with a header line: empty input, not CSV, missing or extra columns."""
    if header is None:
        raise InputError("the input is empty: no header line")
    for magic, kind in _COMPRESSED.items():
        if header.startswith(magic):
            raise InputError(
                f"the input is {kind}-compressed but its name does not say so: name it "
                "*.csv.gz (gzip) or *.csv.bz2 (bzip2) to have it read decompressed, or export "
                "plain CSV"
            )
    looks_like_json = header.lstrip().startswith(("{", "["))  # JSON lines have commas too
    if looks_like_json or "\x00" in header or "\ufffd" in header or "," not in header:
        raise InputError(
            f"the input is not a comma-separated CSV file (first line: {header[:80]!r})"
        )
    expected = RAW_TRAIN_COLUMNS if with_label else RAW_SCORE_COLUMNS
    found = columns(header)
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


def columns(header: str) -> list[str]:
    """The column names of a header line, a leading byte-order mark dropped."""
    return [c.strip().strip('"') for c in header.removeprefix(BYTE_ORDER_MARK).split(",")]


def first_line(spark: SparkSession, uri: str) -> str | None:
    """The first line of a file, or of a folder's first data file by name (None if empty).

    Read on the driver through Hadoop's filesystem (local, gs:// and hdfs:// alike),
    decompressed as Spark would: no Spark job. Raises InputError if nothing is there.
    """
    if not storage.exists(spark, uri):
        raise InputError(f"input {uri} does not exist")
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    root = jvm.org.apache.hadoop.fs.Path(uri)
    fs = root.getFileSystem(conf)
    prefix = len(root.toUri().getPath())
    files, listing = [], fs.listFiles(root, True)
    while listing.hasNext():
        path = listing.next().getPath()
        parts = path.toUri().getPath()[prefix:].split("/")
        if not any(p.startswith(("_", ".")) for p in parts if p):  # hidden to Spark too
            files.append((path.toString(), path))
    if not files:
        return None
    first = min(files, key=lambda f: f[0])[1]
    stream = fs.open(first)
    codec = jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(conf).getCodec(first)
    reader = jvm.org.apache.hadoop.util.LineReader(
        codec.createInputStream(stream) if codec else stream
    )
    try:
        line = jvm.org.apache.hadoop.io.Text()
        read = reader.readLine(line, HEADER_LINE_LIMIT, HEADER_LINE_LIMIT)
    finally:
        reader.close()
    return line.toString() if read else None


def read(spark: SparkSession, uri: str, with_label: bool) -> DataFrame:
    """The raw rows as strings, columns in the file's order; malformed lines fail the read."""
    path = storage.normalize(uri)
    header = first_line(spark, path)
    check_header(header, with_label)
    return spark.read.csv(
        path, header=True, schema=raw_schema(columns(header)), mode="FAILFAST", enforceSchema=False
    )
