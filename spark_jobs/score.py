"""Batch scoring: the day's customers -> ``batch_predictions`` with the given model version.

Rows that cannot be scored go to ``batch_rejects`` with the reason, so input = scored +
rejected; past ``--max-reject-fraction`` the job fails before writing anything. Once both
tables are committed, ``--stats-uri`` receives the run's counts as a small JSON document.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from churn_ml import cleaning, cli, raw_csv, storage
from churn_ml.compiled_model import compile_model
from churn_ml.layout import BATCH_PREDICTIONS, BATCH_REJECTS, table_uri
from churn_ml.model import CHURN_PROBABILITY, churn_probability
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
        help="fail when more than this fraction of rows cannot be scored (default 0.05)",
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
    model = PipelineModel.load(uri)
    compiled = compile_model(spark, model, uri)
    if compiled is not None:
        return compiled.transform
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
    parsed = cleaning.parse(raw_csv.read(spark, args.input_uri, with_label=False))
    partition = {"pipeline_id": args.pipeline_id}

    def stage(table: str, df: DataFrame) -> storage.StagedTable:
        tagged = cleaning.with_lineage(df, args.pipeline_id, args.pipeline_execution_dt)
        uri = table_uri(args.dataset_uri, table)
        return storage.stage_table(tagged, uri, partition, args.pipeline_execution_dt)

    # Two passes over the input, no cache: the rejects (counting every row on the way), then,
    # once the counts are within the limit, the predictions. Both commit only at the end.
    counts = Observation("scoring input")
    counted = parsed.observe(
        counts,
        F.count(F.lit(1)).alias("rows_in"),
        F.count(cleaning.REJECT_REASON).alias("rejected"),
    )
    staged = []
    try:
        try:
            staged.append(stage(BATCH_REJECTS, reject_rows(counted, args.model_version)))
        except Exception as err:  # FAILFAST read: a line that is not a CSV record
            malformed = raw_csv.malformed_input(err)
            if malformed:
                raise malformed from err
            raise
        rows_in, rejected = counts.get["rows_in"], counts.get["rejected"]
        if not rows_in:
            raise cli.InputError("the scoring input has a header but no rows")
        if rejected > args.max_reject_fraction * rows_in:
            reasons = cleaning.rejects(parsed).groupBy(cleaning.REJECT_REASON).count().collect()
            raise cli.InputError(
                f"{rejected} of {rows_in} rows cannot be scored, more than the allowed fraction "
                f"{args.max_reject_fraction}: "
                + str({r[cleaning.REJECT_REASON]: r["count"] for r in reasons})
            )
        scorer = load_scorer(spark, args.model_uri)
        scored = predictions(scorer, cleaning.clean(parsed), args.model_version)
        staged.append(stage(BATCH_PREDICTIONS, scored))
        for table in staged:
            table.commit()
    except BaseException:
        for table in staged:  # what is still staged (a committed table has nothing left)
            table.discard()
        raise
    stats = run_stats(args, rows_in, rejected)
    if args.stats_uri:
        storage.write_text(spark, args.stats_uri, json.dumps(stats, indent=2) + "\n")
    log.info(
        "scored %(scored)d of %(rows_in)d rows, rejected %(rejected)d, model %(model_version)s",
        stats,
    )
    return stats


def run_stats(args, rows_in: int, rejected: int) -> dict:
    """What the run knows of itself, for the check that compares it with the tables."""
    return {
        "pipeline_id": args.pipeline_id,
        "pipeline_execution_dt": args.pipeline_execution_dt.isoformat(),
        "model_version": args.model_version,
        "rows_in": rows_in,
        "scored": rows_in - rejected,
        "rejected": rejected,
    }


if __name__ == "__main__":
    cli.run(main)
