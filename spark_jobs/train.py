"""Model training: fit the random-forest pipeline on one run's ``training_data`` and publish it."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pyspark.sql import SparkSession

from churn_core import stages
from churn_ml import cli, drift, run_events
from churn_ml.model import ForestParams, fit, training_pipeline
from churn_ml.publish import add_run_arguments, load_split, parse_run_args, publish, run_target

log = logging.getLogger("churn_ml.train")


def parse_args(argv: Sequence[str] | None):
    p = cli.parser(__doc__)
    add_run_arguments(p)
    defaults = ForestParams()
    p.add_argument("--num-trees", type=cli.positive_int, default=defaults.num_trees)
    p.add_argument("--max-depth", type=cli.positive_int, default=defaults.max_depth)
    p.add_argument("--max-bins", type=cli.positive_int, default=defaults.max_bins)
    return parse_run_args(p, argv)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    run = run_events.model_run(args, stages.TRAINING)
    return run_events.run_job(run, lambda spark: run_training(spark, args))


def run_training(spark: SparkSession, args) -> dict:
    train, test, champion = load_split(spark, args)
    params = ForestParams(args.num_trees, args.max_depth, args.max_bins)
    log.info("fitting %s", params)  # no count: an extra pass only for this line
    model = fit(training_pipeline(params, args.seed), train)
    profiled = drift.feature_bins(train)
    train.unpersist()
    details = {"params": params.as_dict(), "seed": args.seed}
    target = run_target(args, stages.TRAINING)
    return publish(
        model, test, target, details, champion, args.bootstrap_replicates, features=profiled
    )


if __name__ == "__main__":
    cli.run(main)
