"""A day's drift counts taken in the compiled model's Python pass.

``drift.observed_counts`` counts each bin with its own JVM aggregate: about 70 per row, 1.7 s
per million rows. The compiled model already hands every Arrow batch to Python with the
category codes, the numeric features and the churn probability, so ``BinCounter`` counts
the same conditions there with numpy and sums them in a Spark accumulator. The counts and
their names are ``observed_counts``' own, so ``drift.measure`` reads either.

An accumulator updated in a result stage counts each partition once, as an ``Observation``
does: the scoring write is that stage (the rows reach it through a shuffle by customer).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pyspark import cloudpickle
from pyspark.accumulators import AccumulatorParam
from pyspark.sql import Column
from pyspark.sql import functions as F

# Pickled into the Python workers with the compiled model (see churn_ml.compiled_model).
cloudpickle.register_pickle_by_value(sys.modules[__name__])

CODE, NUMERIC, SCORE = "code", "numeric", "score"


class VectorSum(AccumulatorParam):
    """Element-wise sums of int64 vectors."""

    def zero(self, value: np.ndarray) -> np.ndarray:
        return np.zeros_like(value)

    def addInPlace(self, total: np.ndarray, more: np.ndarray) -> np.ndarray:
        total += more
        return total


@dataclass(frozen=True)
class FeaturePlan:
    """Where one profiled feature is in a batch, and how its conditions count."""

    source: str  # CODE (a categorical column's codes), NUMERIC (a numeric column), SCORE
    column: int  # its index among the codes or the numerics
    lookup: tuple[int, ...] = ()  # CODE: the profile category of each model code, -1 none
    categories: int = 0  # CODE: how many categories the profile has
    edges: tuple[float, ...] = ()  # NUMERIC, SCORE: the profile's bin edges

    def counts(self, codes: np.ndarray, numerics: np.ndarray, score: np.ndarray) -> np.ndarray:
        """``drift._conditions``' counts: each category; or below each edge but the last,
        then above the last."""
        if self.source == CODE:
            category = np.asarray(self.lookup)[codes[:, self.column]]
            return np.bincount(category[category >= 0], minlength=self.categories)
        x = numerics[:, self.column] if self.source == NUMERIC else score
        below = [np.count_nonzero(x < e) for e in self.edges[:-1]]
        return np.array([*below, np.count_nonzero(x > self.edges[-1])])


class BinCounter:
    """A ``compiled_model.BatchObserver`` that counts the drift bins of the scored rows, those
    whose ``reject`` column is null. It travels to the workers, so it holds no Column."""

    def __init__(self, names: Sequence[str], plans: Sequence[FeaturePlan], reject: str, acc):
        self.names, self.plans, self.reject, self.accumulator = list(names), plans, reject, acc

    def inputs(self) -> list[Column]:
        return [F.col(self.reject).isNull()]

    def observe(self, codes, numerics, probability, extra) -> None:
        keep = extra[0].astype(bool)
        codes, numerics, score = codes[keep], numerics[keep], probability[keep]
        parts = [np.array([keep.sum()]), *(p.counts(codes, numerics, score) for p in self.plans)]
        self.accumulator.add(np.concatenate(parts).astype(np.int64))

    def counts(self) -> dict[str, int]:
        """The counts by ``observed_counts``' names, once the pass has run."""
        return dict(zip(self.names, self.accumulator.value.tolist(), strict=True))


def plan(
    bins, categorical: dict[str, tuple[str, ...]], numeric: Sequence[str]
) -> FeaturePlan | None:
    """The plan of one profile feature (``drift.Bins``) for a model that reads ``categorical``
    (column -> its labels by code) and ``numeric``; None if the model does not read it."""
    if bins.numeric and bins.feature in numeric:
        return FeaturePlan(NUMERIC, list(numeric).index(bins.feature), edges=bins.edges)
    if not bins.numeric and bins.feature in categorical:
        where = {c: i for i, c in enumerate(bins.categories)}
        # The model's last code is its unseen label: a value neither it nor the profile knew.
        lookup = (*(where.get(label, -1) for label in categorical[bins.feature]), -1)
        column = list(categorical).index(bins.feature)
        return FeaturePlan(CODE, column, lookup=lookup, categories=len(bins.categories))
    return None


def counter(spark, profile, model, reject: str) -> BinCounter | None:
    """The counter of ``profile``'s bins for a compiled ``model``, or None when the model does
    not read every profiled feature (the job then counts with an ``Observation``)."""
    from churn_ml import drift

    categorical = dict(model.categorical)
    plans = [plan(b, categorical, model.numeric) for b in profile.features]
    if None in plans:
        return None
    score = FeaturePlan(SCORE, 0, edges=profile.score.edges)
    names = drift.observed_names(profile)
    acc = spark.sparkContext.accumulator(np.zeros(len(names), np.int64), VectorSum())
    return BinCounter(names, [*plans, score], reject, acc)
