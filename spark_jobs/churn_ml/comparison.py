"""The champion against the challenger on the same test rows: a paired bootstrap in Spark.

Both models score the run's own test split, so each row carries two churn probabilities.
Replicate ``b`` gives every row one weight ``w ~ Poisson(1)``, drawn from a 64-bit hash of a
constant of its own, the row's ``customer_id`` and ``b`` (53 bits of it make a uniform number,
whose inverse Poisson CDF is the weight). Both models see the same weight, so the comparison
is paired; the hash makes it deterministic and independent of the split's hash; ``rand()`` is
never used. (A Poisson(1) weight per row is the streaming form of resampling ``n`` rows with
replacement.)

Per replicate, the weighted (model, score bin) counts give both ROC and PR curves exactly as
``evaluation.curves`` draws them, computed with window functions in Spark; only one row per
replicate reaches the driver: the AUPR and AUROC differences. The interval is the percentile
interval of those differences.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from churn_ml.evaluation import DEFAULT_BINS, score_bin
from churn_ml.model import CHURN_PROBABILITY, LABEL_INDEX

REPLICATES = 1000  # enough for the tails of a two-sided 95% percentile interval
CONFIDENCE = 0.95
BOOTSTRAP_KEY = "churn-champion-bootstrap"  # the weights' own constant, not the split's seed
CHAMPION_PROBABILITY = "champion_probability"
CHAMPION_PREDICTION = "champion_prediction"
METRICS = ("au_pr", "au_roc")
METHOD = "paired Poisson(1) bootstrap over the test rows, percentile interval"


def _poisson_cdf() -> tuple[float, ...]:
    """P(X <= k) of Poisson(1) for k = 0, 1, ... while it is below 1 in double precision."""
    cdf, term, k = [], math.exp(-1.0), 0
    while not cdf or cdf[-1] + term < 1.0:
        cdf.append((cdf[-1] if cdf else 0.0) + term)
        k += 1
        term /= k
    return tuple(cdf)


POISSON_CDF = _poisson_cdf()


def row_key(customer_id: Column) -> Column:
    """A row's 64-bit hash under the bootstrap's own constant (the split hashes with its seed)."""
    return F.xxhash64(F.lit(BOOTSTRAP_KEY), customer_id)


def uniform(key: Column, replicate: Column) -> Column:
    """A number in [0, 1) from the top 53 bits of a 64-bit hash of a row's key and a replicate."""
    bits = F.shiftrightunsigned(F.xxhash64(key, replicate), 11)
    return bits.cast("double") * F.lit(2.0**-53)


def poisson_weight(u: Column) -> Column:
    """The inverse CDF of Poisson(1) at ``u``: the smallest k with u < P(X <= k)."""
    cases = functools.reduce(
        lambda expr, k: expr.when(u < POISSON_CDF[k], k),
        range(1, len(POISSON_CDF)),
        F.when(u < POISSON_CDF[0], 0),
    )
    return cases.otherwise(len(POISSON_CDF))


def replicate_weights(paired: DataFrame, replicates: int) -> DataFrame:
    """Pure transform: every row once per replicate with its weight; zero weights dropped.

    The replicates are spread over the cluster's cores and each meets every row (a broadcast
    cross join), so the rows come out partitioned by replicate and the aggregation and
    windows downstream need no shuffle.
    """
    spark = paired.sparkSession
    parts = max(1, min(replicates, spark.sparkContext.defaultParallelism))
    numbers = spark.range(replicates).select(F.col("id").cast("int").alias("replicate"))
    rows = paired.select(
        row_key(F.col("customer_id")).alias("key"),
        LABEL_INDEX,
        CHURN_PROBABILITY,
        CHAMPION_PROBABILITY,
    )
    exploded = numbers.repartition(parts, "replicate").crossJoin(F.broadcast(rows))
    # The uniform number is its own column, so the weight's CASE hashes once; a u below
    # P(X = 0) is a zero weight, dropped at once (37% of the rows never reach the counts).
    drawn = exploded.withColumn("u", uniform(F.col("key"), F.col("replicate")))
    kept = drawn.where(F.col("u") >= POISSON_CDF[0])
    return kept.withColumn("weight", poisson_weight(F.col("u")))


def replicate_differences(weighted: DataFrame, bins: int = DEFAULT_BINS) -> DataFrame:
    """Pure transform: (replicate, au_pr, au_roc) of challenger minus champion.

    ``weighted`` holds replicate, weight, label and both models' churn probabilities. One
    bounded aggregation counts the weighted positives and negatives per (replicate, model,
    score bin). One running sum per replicate and model, in descending bin order, gives each
    threshold's true and false positives (``tp``, ``fp``), and the trapezoids of
    ``evaluation.curves`` follow from the bin's own counts: the PR segment of a bin with
    ``pos`` positives is ``pos / P`` wide and the ROC segment of ``neg`` negatives ``neg / N``.
    A replicate that drew no positive or no negative row has no curves and is left out.
    """
    models = F.inline(
        F.array(
            F.struct(F.lit(1).alias("sign"), score_bin(CHURN_PROBABILITY, bins).alias("bin")),
            F.struct(F.lit(-1).alias("sign"), score_bin(CHAMPION_PROBABILITY, bins).alias("bin")),
        )
    )
    positive = F.col(LABEL_INDEX).cast("long")
    counts = (
        weighted.select("replicate", "weight", positive.alias("positive"), models)
        .groupBy("replicate", "sign", "bin")
        .agg(
            F.sum(F.col("weight") * F.col("positive")).alias("pos"),
            F.sum(F.col("weight") * (1 - F.col("positive"))).alias("neg"),
        )
        .where(F.col("pos") + F.col("neg") > 0)  # a bin of zero weights is no threshold
    )
    down = Window.partitionBy("replicate", "sign").orderBy(F.desc("bin"))
    running = down.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    points = counts.select(
        "replicate",
        "sign",
        "pos",
        "neg",
        F.sum("pos").over(running).alias("tp"),
        F.sum("neg").over(running).alias("fp"),
    )
    pos, neg, tp, fp = (F.col(c) for c in ("pos", "neg", "tp", "fp"))
    precision = tp / (tp + fp)  # every bin left holds weight, so tp + fp > 0
    before = tp + fp - pos - neg  # rows above this bin: none at the first one
    previous = F.when(before > 0, (tp - pos) / before).otherwise(precision)
    terms = points.select(
        "replicate",
        "sign",
        "pos",
        "neg",
        (pos * (precision + previous) / 2).alias("pr"),  # times P: the recall step is pos / P
        (neg * (2 * tp - pos) / 2).alias("roc"),  # times P * N
    )

    def of(sign: int, column: str) -> Column:
        return F.sum(F.when(F.col("sign") == sign, F.col(column)))

    per_model = terms.groupBy("replicate").agg(
        *[of(s, c).alias(f"{c}_{s}") for s in (1, -1) for c in ("pr", "roc", "pos", "neg")]
    )
    # Each model's area is summed on its own, so two equal curves differ by exactly 0.
    positives, negatives = F.col("pos_1"), F.col("neg_1")  # the same rows and weights for both
    return per_model.where((positives > 0) & (negatives > 0)).select(
        "replicate",
        ((F.col("pr_1") - F.col("pr_-1")) / positives).alias("au_pr"),
        ((F.col("roc_1") - F.col("roc_-1")) / (positives * negatives)).alias("au_roc"),
    )


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile by linear interpolation between order statistics (numpy's default)."""
    position = q * (len(sorted_values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def percentile_interval(values: Sequence[float], confidence: float) -> tuple[float, float]:
    ordered = sorted(values)
    tail = (1 - confidence) / 2
    return quantile(ordered, tail), quantile(ordered, 1 - tail)


def bootstrap(
    paired: DataFrame,
    replicates: int = REPLICATES,
    confidence: float = CONFIDENCE,
    bins: int = DEFAULT_BINS,
) -> dict:
    """The paired bootstrap's intervals of challenger minus champion, per metric."""
    differences = replicate_differences(replicate_weights(paired, replicates), bins).collect()
    if not differences:
        raise ValueError("no bootstrap replicate drew both classes")
    result = {"replicates": len(differences), "confidence": confidence}
    for metric in METRICS:
        lower, upper = percentile_interval([r[metric] for r in differences], confidence)
        result[metric] = {"lower": lower, "upper": upper}
    return result
