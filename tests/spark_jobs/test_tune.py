"""Tuning job end to end on a tiny grid, and its arguments."""

from __future__ import annotations

import itertools

import pytest
import tune
from pyspark.ml import PipelineModel

from churn_core import stages


def grid_points(runs) -> set[tuple[int, int, int]]:
    g = runs.tune_grid
    return set(itertools.product(g["max_depth"], g["max_bins"], g["num_trees"]))


@pytest.mark.slow
def test_tuning_metrics_json(runs):
    document = runs.tuned
    assert runs.metrics_json(runs.tune_metrics) == document
    assert document["operation"] == stages.TUNING.folder
    assert document["pipeline_id"] == runs.pipeline_id
    assert document["selection_metric"] == "au_pr"
    assert document["folds"] == runs.tune_folds
    params = document["params"]
    assert (params["max_depth"], params["max_bins"], params["num_trees"]) in grid_points(runs)
    assert document["metrics"]["au_pr"] > 0.45
    assert document["confusion_matrix"]["labels"] == ["no", "yes"]
    assert sum(map(sum, document["confusion_matrix"]["matrix"])) == document["rows"]
    assert len(document["roc_curve"]["thresholds"]) <= 201


@pytest.mark.slow
def test_cv_results_cover_the_grid_and_the_winner_is_the_best(runs):
    document = runs.tuned
    results = document["cv_results"]
    assert len(results) == len(grid_points(runs)) == 4
    assert {(r["max_depth"], r["max_bins"], r["num_trees"]) for r in results} == grid_points(runs)
    for r in results:
        assert len(r["fold_au_pr"]) == runs.tune_folds
        assert r["mean_au_pr"] == pytest.approx(sum(r["fold_au_pr"]) / runs.tune_folds)
        assert 0.3 < r["mean_au_pr"] <= 1.0
    best = max(r["mean_au_pr"] for r in results)
    assert document["cv_mean_au_pr"] == best
    winner = next(r for r in results if r["mean_au_pr"] == best)
    assert document["params"] == {k: winner[k] for k in ("num_trees", "max_depth", "max_bins")}


@pytest.mark.slow
def test_tuned_model_is_the_winner_and_uses_the_training_split(runs):
    document = runs.tuned
    loaded = PipelineModel.load(str(runs.tune_model))
    forest = loaded.stages[-1]
    assert len(forest.trees) == document["params"]["num_trees"]
    assert forest.getMaxDepth() == document["params"]["max_depth"]
    assert forest.getMaxBins() == document["params"]["max_bins"]
    # same seed, same split: tuning is evaluated on the very test rows training used
    assert document["rows"] == runs.trained["rows"]
    tuned_ids = runs.table(
        "test_predictions", operation=stages.TUNING.folder, pipeline_id=runs.pipeline_id
    )
    trained_ids = runs.table(
        "test_predictions", operation=stages.TRAINING.folder, pipeline_id=runs.pipeline_id
    )
    assert tuned_ids.select("customer_id").subtract(trained_ids.select("customer_id")).count() == 0
    metrics = runs.table(
        "model_metrics", operation=stages.TUNING.folder, pipeline_id=runs.pipeline_id
    )
    assert {r.metric_name: r.metric_value for r in metrics.collect()} == document["metrics"]


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--max-bins-grid", "1"], "--max-bins-grid"),
        (["--num-trees-grid", "0,5"], "--num-trees-grid"),
        (["--max-depth-grid", "five"], "--max-depth-grid"),
        (["--folds", "1"], "--folds"),
        (["--folds", "11"], "--folds"),
        (["--parallelism", "0"], "--parallelism"),
    ],
)
def test_parse_args_rejects(extra, named, capsys):
    base = ["--pipeline-id", "p1", "--dataset-uri", "w", "--model-uri", "m", "--metrics-uri", "x"]
    with pytest.raises(SystemExit) as exc:
        tune.parse_args([*base, *extra])
    assert exc.value.code == 2
    assert named in capsys.readouterr().err


def test_parse_args_defaults_and_lists():
    base = ["--pipeline-id", "p1", "--dataset-uri", "w", "--model-uri", "m", "--metrics-uri", "x"]
    args = tune.parse_args([*base, "--num-trees-grid", "10,5,10", "--folds", "3"])
    assert args.num_trees_grid == [5, 10]
    assert args.max_depth_grid == [5, 10, 15]
    assert args.folds == 3
    assert args.seed == 42
