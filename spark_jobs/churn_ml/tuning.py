"""k-fold cross-validation of the random forest, selecting on AUPR.

Compared with a CrossValidator over the whole pipeline, three things make it fast without
changing what is measured:
- the feature stages are fitted once on the training rows and their vectors cached, since
  no grid parameter touches them;
- a forest of the largest ``numTrees`` is fitted per (fold, maxDepth, maxBins) and the
  smaller sizes are its first trees (see ``model.sub_forest``), so fits drop by the number of
  tree counts in the grid;
- the fits run concurrently: on small folds a fit waits on Spark's job scheduling more than
  on the CPU. For the same reason small folds are fitted in few partitions (see
  ``fold_data``).
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from churn_core.grids import DEFAULT_GRID, GRIDS
from churn_ml.evaluation import evaluate
from churn_ml.model import ForestParams, churn_probability, fit, forest, sub_forest

log = logging.getLogger(__name__)

FOLD = "fold"
ROWS_PER_PARTITION = 50_000


@dataclass(frozen=True)
class Grid:
    max_depth: Sequence[int] = GRIDS[DEFAULT_GRID]["max_depth"]
    max_bins: Sequence[int] = GRIDS[DEFAULT_GRID]["max_bins"]
    num_trees: Sequence[int] = GRIDS[DEFAULT_GRID]["num_trees"]

    def params(self) -> list[ForestParams]:
        return [
            ForestParams(num_trees=t, max_depth=d, max_bins=b)
            for d, b, t in itertools.product(self.max_depth, self.max_bins, self.num_trees)
        ]


@dataclass(frozen=True)
class Score:
    params: ForestParams
    fold_au_pr: tuple[float, ...]

    @property
    def mean_au_pr(self) -> float:
        return sum(self.fold_au_pr) / len(self.fold_au_pr)

    def as_dict(self) -> dict:
        return {
            **self.params.as_dict(),
            "mean_au_pr": self.mean_au_pr,
            "fold_au_pr": list(self.fold_au_pr),
        }


def assign_folds(vectors: DataFrame, folds: int, seed: int) -> DataFrame:
    """Pure transform: a fold per customer from a seeded hash, independent of partitioning."""
    return vectors.withColumn(FOLD, F.abs(F.xxhash64("customer_id", F.lit(seed + 1))) % folds)


def fold_data(vectors: DataFrame, folds: int, seed: int) -> DataFrame:
    """The rows cross-validation fits on: a fold each, in as few partitions as their number
    allows (one per ``ROWS_PER_PARTITION``).

    Each level of a forest is a Spark job; on a small fold its tasks cost more in overhead
    than in rows, and the concurrent fits keep the cores busy instead (the full default grid
    here: 236 s in 4 partitions, 189 s in 1). ``coalesce`` keeps the row order, so the
    folds' partitioning stays reproducible.
    """
    rows = vectors.count()
    log.info("cross-validating on %d rows in %d folds", rows, folds)
    partitions = max(1, math.ceil(rows / ROWS_PER_PARTITION))
    return assign_folds(vectors.coalesce(partitions), folds, seed)


def cross_validate(
    vectors: DataFrame, grid: Grid, folds: int, seed: int, parallelism: int
) -> list[Score]:
    """Mean validation AUPR of every grid point; ``vectors`` holds features, label, customer_id."""
    if folds < 2:
        raise ValueError("cross-validation needs at least 2 folds")
    data = fold_data(vectors, folds, seed).cache()
    largest = max(grid.num_trees)
    fits = list(itertools.product(range(folds), grid.max_depth, grid.max_bins))
    log.info("%d grid points: %d forests to fit", len(grid.params()), len(fits))
    started = time.monotonic()

    def fit_and_score(job: tuple[int, int, int]) -> dict[tuple[int, int, int, int], float]:
        fold, depth, bins = job
        train = data.where(F.col(FOLD) != fold)
        valid = data.where(F.col(FOLD) == fold)
        model = fit(forest(ForestParams(largest, depth, bins), seed), train)
        scores = {
            (fold, depth, bins, trees): evaluate(
                churn_probability(sub_forest(model, trees).transform(valid))
            )["metrics"]["au_pr"]
            for trees in grid.num_trees
        }
        return scores

    results: dict[tuple[int, int, int, int], float] = {}
    try:
        with ThreadPoolExecutor(max_workers=parallelism) as pool:
            pending = [pool.submit(fit_and_score, job) for job in fits]
            for done, future in enumerate(as_completed(pending), start=1):
                results.update(future.result())
                log.info(
                    "cross-validation: %d of %d forests fitted after %.0f s",
                    done,
                    len(fits),
                    time.monotonic() - started,
                )
    finally:
        data.unpersist()
    return [
        Score(p, tuple(results[(f, p.max_depth, p.max_bins, p.num_trees)] for f in range(folds)))
        for p in grid.params()
    ]


def best(scores: Sequence[Score]) -> Score:
    """Highest mean AUPR; ties go to the smaller, cheaper forest."""
    return max(
        scores,
        key=lambda s: (s.mean_au_pr, -s.params.max_depth, -s.params.num_trees, -s.params.max_bins),
    )
