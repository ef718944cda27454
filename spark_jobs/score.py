"""Batch scoring: the day's customers -> ``batch_predictions`` with the given model version.

Each input customer gets one row: a prediction, or in ``batch_rejects`` the reason it cannot
be scored, so customers_in = scored + rejected (``churn_ml.customers`` defines the count);
past ``--max-reject-fraction`` the job fails before writing anything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from churn_ml import cleaning, cli, customers, raw_csv, storage
from churn_ml.compiled_model import load_compiled
from churn_ml.layout import table_uri
from churn_ml.model import CHURN_PROBABILITY, churn_probability
from churn_ml.schema import BATCH_PREDICTIONS, BATCH_REJECTS
from churn_ml.session import build_session

log = logging.getLogger("churn_ml.score")

MODEL_VERSION = "model_version"


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


def predictions(scorer: Scorer, customers: DataFrame, model_version: str) -> DataFrame:
    """Pure transform: the cleaned columns plus prediction, churn probability and model version."""
    scored = scorer(customers)
    return scored.select(
        *customers.columns,
        F.col("prediction").cast("int").alias("prediction"),
        CHURN_PROBABILITY,
        F.lit(model_version).alias(MODEL_VERSION),
    )


def reject_rows(parsed: DataFrame, model_version: str) -> DataFrame:
    """Pure transform: what identifies each unscorable row, and why it was rejected."""
    return cleaning.rejects(parsed).select(
        "customer_id", cleaning.REJECT_REASON, F.lit(model_version).alias(MODEL_VERSION)
    )


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    spark = build_session("churn-batch-scoring")
    raw = raw_csv.read(spark, args.input_uri, with_label=False)
    parsed = customers.one_per_customer(cleaning.parse(raw))
    partition = {"pipeline_id": args.pipeline_id}

    def stage(table: str, df: DataFrame) -> storage.StagedTable:
        tagged = cleaning.with_lineage(df, args.pipeline_id, args.pipeline_execution_dt)
        return storage.stage_table(tagged, table_uri(args.dataset_uri, table), partition)

    # Two passes over the input, no cache: the rejects (counting every row on the way), then,
    # once the counts are within the limit, the predictions. Both commit only at the end.
    counts = Observation("scoring input")
    counted = parsed.observe(counts, *customers.tally())
    staged = []
    try:
        try:
            staged.append(stage(BATCH_REJECTS, reject_rows(counted, args.model_version)))
        except Exception as err:  # FAILFAST read: a line that is not a CSV record
            malformed = raw_csv.malformed_input(err)
            if malformed:
                raise malformed from err
            raise
        tally = counts.get
        customers_in, rejected = tally["customers_in"], tally["rejected"]
        if not customers_in:
            raise cli.InputError("the scoring input has a header but no rows")
        if rejected > args.max_reject_fraction * customers_in:
            reasons = cleaning.rejects(parsed).groupBy(cleaning.REJECT_REASON).count().collect()
            raise cli.InputError(
                f"{rejected} of {customers_in} customers cannot be scored, more than the allowed "
                f"fraction {args.max_reject_fraction}: "
                + str({r[cleaning.REJECT_REASON]: r["count"] for r in reasons})
            )
        scorer = load_scorer(spark, args.model_uri)
        scored = predictions(scorer, cleaning.clean(parsed), args.model_version)
        staged.append(stage(BATCH_PREDICTIONS, scored))
    except BaseException:
        for table in staged:
            table.discard()
        raise
    for table in staged:
        table.commit()
    stats = {
        **tally,
        "scored": customers_in - rejected,
        "model_version": args.model_version,
    }
    log.info(
        "scored %(scored)d of %(customers_in)d customers (%(rows_in)d rows, %(repeated_headers)d "
        "repeated header lines dropped), rejected %(rejected)d, model %(model_version)s",
        stats,
    )
    return stats


if __name__ == "__main__":
    cli.run(main)
