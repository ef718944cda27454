"""Batch scoring: the day's customers -> ``batch_predictions`` with the given model version.

Each input customer gets one row: a prediction, or in ``batch_rejects`` the reason it cannot
be scored, so customers_in = scored + rejected (``churn_ml.customers`` defines the count).
One pass over the input cleans and scores every customer and stages both tables, counting on
the way; past ``--max-reject-fraction`` the staged rows are dropped and the job fails with
nothing visible. Both tables commit together, then ``--stats-uri`` receives the run's counts
as a small JSON document.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from churn_ml import cleaning, cli, customers, raw_csv, storage
from churn_ml.compiled_model import load_compiled
from churn_ml.layout import BATCH_PREDICTIONS, BATCH_REJECTS, table_uri
from churn_ml.model import CHURN_PROBABILITY, churn_probability
from churn_ml.schema import LINEAGE_COLUMNS
from churn_ml.session import build_session

log = logging.getLogger("churn_ml.score")

MODEL_VERSION = "model_version"
REJECT_COLUMNS = ("customer_id", cleaning.REJECT_REASON, MODEL_VERSION, *LINEAGE_COLUMNS)


def parse_args(argv: Sequence[str] | None):
    p = cli.parser(__doc__)
    p.add_argument("--input-uri", required=True, help="the day's scoring CSV (file or folder)")
    p.add_argument("--model-uri", required=True, help="saved PipelineModel to score with")
    p.add_argument("--model-version", required=True, help="recorded in every output row")
    cli.add_dataset_uri(p)
    p.add_argument(
        "--max-reject-fraction",
        type=cli.fraction,
        default=0.05,
        help="fail when more than this fraction of customers cannot be scored (default 0.05)",
    )
    p.add_argument(
        "--stats-uri",
        help="where to write the run's counts as JSON once the tables are committed "
        "(the scoring DAG's check reads them)",
    )
    return p.parse_args(argv)


Scorer = Callable[[DataFrame], DataFrame]


def load_scorer(spark: SparkSession, model_uri: str) -> Scorer:
    """The saved model as a function adding ``prediction`` and ``churn_probability``.

    The compiled form when the model has the shape training fits, else the model's transform.
    """
    uri = storage.normalize(model_uri)
    compiled = load_compiled(spark, uri)
    if compiled is not None:
        return compiled.transform
    model = PipelineModel.load(uri)
    return lambda customers: churn_probability(model.transform(customers))


def every_row_cleaned(parsed: DataFrame) -> DataFrame:
    """Pure transform: ``cleaning.clean``'s recoding of every parsed row, rejects included,
    each keeping its ``reject_reason`` (``clean`` itself keeps the usable rows only)."""
    reason, kept = cleaning.REJECT_REASON, "_reject_reason"
    usable = parsed.withColumnRenamed(reason, kept).withColumn(reason, F.lit(None).cast("string"))
    return cleaning.clean(usable).withColumnRenamed(kept, reason)


def outcomes(scorer: Scorer, parsed: DataFrame, model_version: str) -> DataFrame:
    """Pure transform: every row cleaned and scored, with its model version and reject reason
    (null for a row the model can use; a rejected row's scores mean nothing and are dropped)."""
    rows = every_row_cleaned(parsed)
    return scorer(rows).select(
        *rows.columns,
        F.col("prediction").cast("int").alias("prediction"),
        CHURN_PROBABILITY,
        F.lit(model_version).alias(MODEL_VERSION),
    )


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    spark = build_session("churn-batch-scoring")
    raw = raw_csv.read(spark, args.input_uri, with_label=False)
    records = customers.one_per_customer(cleaning.parse(raw))
    scorer = load_scorer(spark, args.model_uri)
    counts = Observation("scoring input")
    counted = records.observe(counts, *customers.tally()).where(~customers.repeated_header())
    rows = cleaning.with_lineage(
        outcomes(scorer, counted, args.model_version), args.pipeline_id, args.pipeline_execution_dt
    )
    # The one pass: predictions and rejects staged by a single write, counted on the way.
    try:
        split = storage.stage_split(
            rows,
            cleaning.REJECT_REASON,
            table_uri(args.dataset_uri, BATCH_PREDICTIONS),
            table_uri(args.dataset_uri, BATCH_REJECTS),
            REJECT_COLUMNS,
            {"pipeline_id": args.pipeline_id},
            args.pipeline_execution_dt,
        )
    except Exception as err:  # FAILFAST read: a line that is not a CSV record
        malformed = raw_csv.malformed_input(err)
        if malformed:
            raise malformed from err
        raise
    tables = []
    try:
        tally = counts.get
        check_rejects(split, tally["customers_in"], tally["rejected"], args.max_reject_fraction)
        tables = split.tables()
        storage.commit_all(tables)  # rejects, then predictions (simultaneous on BigQuery)
    except BaseException:
        split.discard()
        for table in tables:  # what is still staged (a committed table has nothing left)
            table.discard()
        raise
    stats = run_stats(args, tally)
    if args.stats_uri:
        storage.write_text(spark, args.stats_uri, json.dumps(stats, indent=2) + "\n")
    log.info(
        "scored %(scored)d of %(customers_in)d customers (%(rows_in)d rows, %(repeated_headers)d "
        "repeated header lines dropped), rejected %(rejected)d, model %(model_version)s",
        stats,
    )
    return stats


def check_rejects(
    split: storage.StagedSplit, customers_in: int, rejected: int, max_fraction: float
) -> None:
    """Fail when there is nothing to score, or when too many customers cannot be scored (the
    reasons counted from the staged rejects)."""
    if not customers_in:
        raise cli.InputError("the scoring input has a header but no rows")
    if rejected > max_fraction * customers_in:
        reasons = split.side_rows().groupBy(cleaning.REJECT_REASON).count().collect()
        raise cli.InputError(
            f"{rejected} of {customers_in} customers cannot be scored, more than the allowed "
            f"fraction {max_fraction}: "
            + str({r[cleaning.REJECT_REASON]: r["count"] for r in reasons})
        )


def run_stats(args, tally: dict) -> dict:
    """What the run knows of itself, for the check that compares it with the tables
    (``customers.tally``'s counts)."""
    return {
        "pipeline_id": args.pipeline_id,
        "pipeline_execution_dt": args.pipeline_execution_dt.isoformat(),
        "model_version": args.model_version,
        "rows_in": tally["rows_in"],
        "repeated_headers": tally["repeated_headers"],
        "customers_in": tally["customers_in"],
        "scored": tally["customers_in"] - tally["rejected"],
        "rejected": tally["rejected"],
    }


if __name__ == "__main__":
    cli.run(main)
