"""One record per customer, and the counts every job reports about its input.

The jobs count customers, not lines. ``one_per_customer`` turns the parsed rows into one
record per customer_id:
- exact copies of a row are one record;
- a customer_id with two or more different rows is one reject, ``CONFLICTING_ROWS``: which
  row is right is not guessed, in training or in scoring;
- a row without customer_id stands alone (its reject reason is ``missing customer_id``);
- repeated header lines become one ``REPEATED_HEADER`` record, which no job keeps.

Each record carries ``SOURCE_ROWS``, the input rows it stands for. So, over the data rows
(header lines excluded): ``rows_in = customers_in + duplicates``, and every input customer
gets exactly one output row: ``customers_in = kept + rejected`` (scored + rejected in
scoring, written + dropped in preprocessing).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from churn_ml.cleaning import (
    CONFLICTING_ROWS,
    REJECT_REASON,
    REJECT_REASONS,
    REPEATED_HEADER,
    SOURCE_ROWS,
    sql_string,
)

CUSTOMER_ID = "customer_id"


def one_per_customer(parsed: DataFrame) -> DataFrame:
    """Pure transform: ``parse``'s rows, one per customer (module docstring), + ``SOURCE_ROWS``.

    One shuffle by customer_id, carrying each row and a 64-bit hash of it: rows with equal
    hashes are taken as copies (a false match has odds of about 1 in 2^64 per pair). A
    conflicting customer keeps its row of smallest hash: the output does not depend on the
    input's order or partitioning.
    """
    digest = F.xxhash64(*parsed.columns)
    reason = F.col(REJECT_REASON)
    # Rows not tied to a customer each stand alone; copies of one still merge.
    alone = F.col(CUSTOMER_ID).isNull() | reason.eqNullSafe(REPEATED_HEADER)
    hashed = parsed.withColumn("_digest", digest)
    rows = Window.partitionBy(CUSTOMER_ID, F.when(alone, F.col("_digest")))
    ordered = rows.orderBy("_digest")
    whole = ordered.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    marked = hashed.withColumns(
        {
            "_first": F.row_number().over(ordered) == 1,
            "_conflict": F.min("_digest").over(whole) != F.max("_digest").over(whole),
            SOURCE_ROWS: F.count(F.lit(1)).over(whole),
        }
    )
    return (
        marked.where("_first")
        .withColumn(REJECT_REASON, F.when(F.col("_conflict"), CONFLICTING_ROWS).otherwise(reason))
        .drop("_digest", "_first", "_conflict")
    )


def repeated_header() -> Column:
    """True on the record of repeated header lines, which no job keeps."""
    return F.col(REJECT_REASON).eqNullSafe(REPEATED_HEADER)


def tally() -> list[Column]:
    """Aggregates over ``one_per_customer``'s records (for an ``Observation``).

    ``rows_in``: data rows read; ``repeated_headers``: header lines dropped; ``customers_in``;
    ``rejected``: customers with a reject reason.
    """
    header, rows = repeated_header(), F.col(SOURCE_ROWS)
    return [
        F.coalesce(F.sum(F.when(~header, rows)), F.lit(0)).alias("rows_in"),
        F.coalesce(F.sum(F.when(header, rows)), F.lit(0)).alias("repeated_headers"),
        F.count_if(~header).alias("customers_in"),
        F.count_if(~header & F.col(REJECT_REASON).isNotNull()).alias("rejected"),
    ]


def reason_counts() -> list[Column]:
    """One aggregate per reject reason: the customers rejected for it."""
    return [F.expr(f"count_if({REJECT_REASON} = {sql_string(r)}) AS `{r}`") for r in REJECT_REASONS]
