"""Hyperparameter tuning: k-fold cross-validation of the forest on AUPR; publishes the best."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pyspark.ml import Pipeline, PipelineModel
from pyspark.sql import SparkSession

from churn_core import stages
from churn_core.grids import DEFAULT_FOLDS, MAX_FOLDS, MIN_FOLDS
from churn_ml import cli, drift, run_events
from churn_ml.model import FEATURES, LABEL_INDEX, feature_stages, fit, forest
from churn_ml.publish import add_run_arguments, load_split, parse_run_args, publish, run_target
from churn_ml.tuning import Grid, best, cross_validate

log = logging.getLogger("churn_ml.tune")


def parse_args(argv: Sequence[str] | None):
    p = cli.parser(__doc__)
    add_run_arguments(p)
    grid = Grid()
    p.add_argument("--max-depth-grid", type=cli.int_list, default=list(grid.max_depth))
    p.add_argument("--max-bins-grid", type=cli.int_list, default=list(grid.max_bins))
    p.add_argument("--num-trees-grid", type=cli.int_list, default=list(grid.num_trees))
    p.add_argument(
        "--folds",
        type=cli.positive_int,
        default=DEFAULT_FOLDS,
        help=f"{MIN_FOLDS} to {MAX_FOLDS} (default {DEFAULT_FOLDS})",
    )
    p.add_argument(
        "--parallelism", type=cli.positive_int, default=6, help="forests fitted at once (default 6)"
    )
    args = parse_run_args(p, argv)
    if min(args.max_bins_grid) < 2:
        p.error("--max-bins-grid values must be at least 2")
    if not MIN_FOLDS <= args.folds <= MAX_FOLDS:
        p.error(f"--folds must be between {MIN_FOLDS} and {MAX_FOLDS}")
    return args


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    run = run_events.model_run(args, stages.TUNING)
    return run_events.run_job(run, lambda spark: run_tuning(spark, args))


def run_tuning(spark: SparkSession, args) -> dict:
    train, test, champion = load_split(spark, args)
    features = Pipeline(stages=feature_stages()).fit(train)
    vectors = features.transform(train).select("customer_id", FEATURES, LABEL_INDEX).cache()
    grid = Grid(args.max_depth_grid, args.max_bins_grid, args.num_trees_grid)
    scores = cross_validate(vectors, grid, args.folds, args.seed, args.parallelism)
    winner = best(scores)
    log.info("best %s with mean AUPR %.4f", winner.params, winner.mean_au_pr)
    rf = fit(forest(winner.params, args.seed), vectors)
    vectors.unpersist()
    profiled = drift.feature_bins(train)
    train.unpersist()
    model = PipelineModel(stages=[*features.stages, rf])
    details = {
        "params": winner.params.as_dict(),
        "seed": args.seed,
        "selection_metric": "au_pr",
        "folds": args.folds,
        "cv_mean_au_pr": winner.mean_au_pr,
        "cv_results": [s.as_dict() for s in scores],
    }
    target = run_target(args, stages.TUNING)
    return publish(
        model, test, target, details, champion, args.bootstrap_replicates, features=profiled
    )


if __name__ == "__main__":
    cli.run(main)
