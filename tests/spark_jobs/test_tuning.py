"""Cross-validation of the forest: folds, grid, selection and the sub-forest shortcut."""

from __future__ import annotations

import math

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from churn_ml import tuning
from churn_ml.evaluation import evaluate
from churn_ml.model import ForestParams, churn_probability, fit, forest
from churn_ml.tuning import FOLD, Grid, Score


def test_grid_params_is_the_full_product():
    assert len(Grid().params()) == 27
    grid = Grid(max_depth=(3, 5), max_bins=(16,), num_trees=(5, 10))
    assert grid.params() == [
        ForestParams(num_trees=5, max_depth=3, max_bins=16),
        ForestParams(num_trees=10, max_depth=3, max_bins=16),
        ForestParams(num_trees=5, max_depth=5, max_bins=16),
        ForestParams(num_trees=10, max_depth=5, max_bins=16),
    ]


def test_score_mean_and_dict():
    score = Score(ForestParams(5, 3, 16), (0.5, 0.7))
    assert score.mean_au_pr == pytest.approx(0.6)
    assert score.as_dict() == {
        "num_trees": 5,
        "max_depth": 3,
        "max_bins": 16,
        "mean_au_pr": pytest.approx(0.6),
        "fold_au_pr": [0.5, 0.7],
    }


def test_best_takes_the_highest_mean_au_pr():
    scores = [
        Score(ForestParams(5, 3, 16), (0.60, 0.62)),
        Score(ForestParams(50, 15, 64), (0.70, 0.66)),
        Score(ForestParams(10, 5, 16), (0.64, 0.64)),
    ]
    assert tuning.best(scores) is scores[1]


def test_best_breaks_ties_towards_the_cheaper_forest():
    tied = (0.6, 0.6)
    scores = [
        Score(ForestParams(num_trees=10, max_depth=10, max_bins=16), tied),
        Score(ForestParams(num_trees=10, max_depth=5, max_bins=32), tied),
        Score(ForestParams(num_trees=5, max_depth=5, max_bins=32), tied),
        Score(ForestParams(num_trees=5, max_depth=5, max_bins=16), tied),
        Score(ForestParams(num_trees=20, max_depth=3, max_bins=64), (0.5, 0.5)),
    ]
    assert tuning.best(scores).params == ForestParams(num_trees=5, max_depth=5, max_bins=16)
    # shallower beats fewer trees
    pair = [scores[2], Score(ForestParams(num_trees=30, max_depth=4, max_bins=64), tied)]
    assert tuning.best(pair).params.max_depth == 4


def test_assign_folds_is_deterministic_and_balanced(generated_vectors):
    ids = generated_vectors.select("customer_id")
    a = tuning.assign_folds(ids.repartition(7), folds=3, seed=42)
    b = tuning.assign_folds(ids.repartition(1), folds=3, seed=42)
    assertDataFrameEqual(a, b)
    sizes = {r[FOLD]: r["count"] for r in a.groupBy(FOLD).count().collect()}
    assert set(sizes) == {0, 1, 2}
    total = sum(sizes.values())
    assert all(abs(n / total - 1 / 3) < 0.05 for n in sizes.values())
    other = tuning.assign_folds(ids, folds=3, seed=7)
    moved = a.join(other.withColumnRenamed(FOLD, "other"), "customer_id").where(
        F.col(FOLD) != F.col("other")
    )
    assert moved.count() > total / 2  # another seed gives other folds


def test_fold_data_uses_few_partitions_and_keeps_the_folds(generated_vectors, monkeypatch):
    spread = generated_vectors.repartition(5, "customer_id").sortWithinPartitions("customer_id")
    rows = spread.count()
    small = tuning.fold_data(spread, 3, 42)
    assert small.rdd.getNumPartitions() == 1
    folds = small.select("customer_id", FOLD)  # coalesce moves whole rows: their ids stand in
    assertDataFrameEqual(folds, tuning.assign_folds(spread, 3, 42).select("customer_id", FOLD))
    again = tuning.fold_data(spread, 3, 42).select("customer_id", FOLD)
    assert folds.collect() == again.collect()  # in a fixed order
    monkeypatch.setattr(tuning, "ROWS_PER_PARTITION", math.ceil(rows / 3))
    assert tuning.fold_data(spread, 3, 42).rdd.getNumPartitions() == 3
    monkeypatch.setattr(tuning, "ROWS_PER_PARTITION", 1)
    assert tuning.fold_data(spread, 3, 42).rdd.getNumPartitions() == 5  # never more than given


def test_cross_validate_needs_two_folds(generated_vectors):
    with pytest.raises(ValueError, match="at least 2 folds"):
        tuning.cross_validate(generated_vectors, Grid((3,), (16,), (5,)), 1, 42, 1)


@pytest.mark.slow
def test_cross_validate_scores_every_grid_point(generated_vectors):
    grid = Grid(max_depth=(3, 5), max_bins=(16,), num_trees=(3, 6))
    scores = tuning.cross_validate(generated_vectors, grid, folds=2, seed=42, parallelism=2)
    assert [s.params for s in scores] == grid.params()
    base_rate = generated_vectors.where("label = 1").count() / generated_vectors.count()
    for s in scores:
        assert len(s.fold_au_pr) == 2
        assert all(math.isfinite(v) and 0.0 < v <= 1.0 for v in s.fold_au_pr)
        assert s.mean_au_pr > base_rate + 0.15, s  # far better than guessing

    # The 6-tree score of fold 0 is the one of a 6-tree forest fitted on its own.
    data = tuning.fold_data(generated_vectors, 2, 42)
    fitted = fit(
        forest(ForestParams(num_trees=6, max_depth=5, max_bins=16), 42),
        data.where(F.col(FOLD) != 0),
    )
    valid = churn_probability(fitted.transform(data.where(F.col(FOLD) == 0)))
    direct = evaluate(valid)["metrics"]["au_pr"]
    by_params = {(s.params.num_trees, s.params.max_depth): s for s in scores}
    assert by_params[(6, 5)].fold_au_pr[0] == pytest.approx(direct, abs=1e-9)
