"""Model training: fit the random-forest pipeline on one run's ``training_data`` and publish it."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from churn_ml import cli, layout, storage
from churn_ml.model import (
    DEFAULT_SEED,
    ForestParams,
    canonical_order,
    split,
    training_pipeline,
    with_label,
)
from churn_ml.publish import RunTarget, publish
from churn_ml.schema import TRAINING_DATA
from churn_ml.session import build_session

log = logging.getLogger("churn_ml.train")


def add_run_arguments(p) -> None:
    """Arguments shared by training and tuning."""
    p.add_argument("--dataset-uri", required=True, help="bq://project.dataset or a warehouse folder")
    p.add_argument("--model-uri", required=True, help="where the fitted PipelineModel is saved")
    p.add_argument("--metrics-uri", required=True, help="folder for metrics.json")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="split and forest seed")
    p.add_argument("--partitions", type=cli.positive_int, default=4,
                   help="fixed partition count of the training rows (part of reproducibility)")


def parse_args(argv: Sequence[str] | None):
    p = cli.parser(__doc__)
    add_run_arguments(p)
    defaults = ForestParams()
    p.add_argument("--num-trees", type=cli.positive_int, default=defaults.num_trees)
    p.add_argument("--max-depth", type=cli.positive_int, default=defaults.max_depth)
    p.add_argument("--max-bins", type=cli.positive_int, default=defaults.max_bins)
    return p.parse_args(argv)


def load_split(spark, args):
    """This run's training rows, labelled, in canonical order, split 80/20 by a seeded hash."""
    uri = layout.table_uri(args.dataset_uri, TRAINING_DATA)
    rows = storage.read_table(spark, uri, {"pipeline_id": args.pipeline_id})
    train, test = split(with_label(rows), args.seed)
    return canonical_order(train, args.partitions).cache(), test


def run_target(args, operation: str) -> RunTarget:
    return RunTarget(
        pipeline_id=args.pipeline_id,
        execution_dt=args.pipeline_execution_dt,
        operation=operation,
        dataset_uri=args.dataset_uri,
        model_uri=args.model_uri,
        metrics_uri=args.metrics_uri,
    )


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    spark = build_session("churn-training")
    train, test = load_split(spark, args)
    params = ForestParams(args.num_trees, args.max_depth, args.max_bins)
    log.info("fitting %s on %d rows", params, train.count())
    model = training_pipeline(params, args.seed).fit(train)
    train.unpersist()
    details = {"params": params.as_dict(), "seed": args.seed}
    return publish(model, test, run_target(args, layout.TRAINING), details)


if __name__ == "__main__":
    cli.run(main)
