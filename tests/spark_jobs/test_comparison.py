"""The paired bootstrap: hashed Poisson weights, per-replicate curves in Spark, the interval."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from pyspark.sql import functions as F

from churn_ml import comparison
from churn_ml.comparison import CHAMPION_PROBABILITY, POISSON_CDF
from churn_ml.evaluation import Count, curves, evaluate, score_bin
from churn_ml.frames import local_frame

PAIRED = (
    "customer_id string, label double, prediction double, churn_probability double, "
    "champion_prediction double, champion_probability double"
)


def paired_rows(n: int, seed: int = 5, gap: float = 0.1) -> list[tuple]:
    """Two noisy scorers of the same rows; the first one separates the classes better."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = 1.0 if rng.random() < 0.27 else 0.0
        shared = rng.gauss(0.0, 0.15)
        ours = min(max(0.35 + (0.2 + gap) * label + shared + rng.gauss(0, 0.1), 0.0), 1.0)
        theirs = min(max(0.35 + 0.2 * label + shared + rng.gauss(0, 0.1), 0.0), 1.0)
        rows.append((f"{i:04d}-C{i % 7}", label, float(ours > 0.5), ours, float(theirs > 0.5),
                     theirs))  # fmt: skip
    return rows


@pytest.fixture(scope="module")
def paired(spark):
    df = local_frame(spark, paired_rows(1500), PAIRED).repartition(3).cache()
    yield df
    df.unpersist()


def test_the_poisson_inverse_cdf_at_its_edges(spark):
    edges = [0.0, POISSON_CDF[0] - 1e-12, POISSON_CDF[0], POISSON_CDF[1] - 1e-12, POISSON_CDF[1],
             POISSON_CDF[2], POISSON_CDF[-1] - 1e-16, 1.0 - 2.0**-53]  # fmt: skip
    df = local_frame(spark, [(u,) for u in edges], "u double")
    weights = [r.w for r in df.select(comparison.poisson_weight(F.col("u")).alias("w")).collect()]
    assert weights[:6] == [0, 0, 1, 1, 2, 3]
    assert weights[-1] == len(POISSON_CDF)
    assert POISSON_CDF[0] == pytest.approx(math.exp(-1))
    assert 1 - POISSON_CDF[-1] < 2.0**-52  # exact at double precision


def test_weights_are_poisson_one_and_the_same_on_every_run(spark):
    rows = local_frame(spark, [(f"c{i}", 0.0, 0.5, 0.5) for i in range(400)],
                       "customer_id string, label double, churn_probability double, "
                       "champion_probability double")  # fmt: skip
    drawn = rows.crossJoin(spark.range(250).select(F.col("id").cast("int").alias("replicate")))
    u = comparison.uniform(comparison.row_key(F.col("customer_id")), F.col("replicate"))
    key = ["customer_id", "replicate"]
    weights = drawn.select(*key, u.alias("u"), comparison.poisson_weight(u).alias("w")).cache()
    stats = weights.agg(
        F.count("*").alias("n"),
        F.avg("w").alias("mean"),
        F.var_samp("w").alias("var"),
        F.avg((F.col("w") == 0).cast("int")).alias("p0"),
        F.avg((F.col("w") == 2).cast("int")).alias("p2"),
        F.min("u").alias("low"),
        F.max("u").alias("high"),
        F.count_distinct("u").alias("distinct"),
    ).first()
    assert stats.n == 100_000
    assert stats.mean == pytest.approx(1.0, abs=0.01)
    assert stats.var == pytest.approx(1.0, abs=0.02)
    assert stats.p0 == pytest.approx(math.exp(-1), abs=0.005)
    assert stats.p2 == pytest.approx(math.exp(-1) / 2, abs=0.005)
    assert stats.low >= 0.0 and stats.high < 1.0 and stats.distinct == stats.n
    # The uniform numbers carry 53 bits: each is a whole multiple of 2^-53.
    scaled = weights.select((F.col("u") * 2.0**53).alias("k")).where(F.col("k") != F.floor("k"))
    assert scaled.count() == 0
    # Drawn again from scratch, every row gets the same number.
    again = drawn.select(*key, u.alias("again"))
    same = weights.join(again, key).agg(
        F.count("*"), F.sum((F.col("u") == F.col("again")).cast("int"))
    )
    assert tuple(same.first()) == (stats.n, stats.n)
    weights.unpersist()


def test_replicate_weights_drop_zeros_and_come_partitioned_by_replicate(paired):
    weighted = comparison.replicate_weights(paired, 40)
    assert weighted.where("weight < 1").count() == 0
    kept = weighted.count() / (40 * 1500)
    assert kept == pytest.approx(1 - math.exp(-1), abs=0.02)
    plan = comparison.replicate_differences(weighted)._jdf.queryExecution().executedPlan()
    # The replicates meet the broadcast rows where they are: no shuffle of the exploded rows.
    assert plan.toString().count("Exchange hashpartitioning") <= 1


def test_with_unit_weights_the_difference_is_the_evaluations(paired):
    ones = paired.withColumns({"replicate": F.lit(0), "weight": F.lit(1)})
    (row,) = comparison.replicate_differences(ones).collect()
    ours = evaluate(paired)["metrics"]
    theirs = evaluate(paired, probability=CHAMPION_PROBABILITY, prediction="champion_prediction")[
        "metrics"
    ]
    assert row.au_pr == pytest.approx(ours["au_pr"] - theirs["au_pr"], abs=1e-12)
    assert row.au_roc == pytest.approx(ours["au_roc"] - theirs["au_roc"], abs=1e-12)
    assert row.au_pr != 0.0


def test_each_replicate_is_the_weighted_curves_of_both_models(spark, paired):
    """An oracle in plain Python: the weighted counts of each replicate through
    ``evaluation.curves``, the driver-side code of the run's own metrics."""
    small = paired.limit(300)
    weighted = comparison.replicate_weights(small, 12).cache()
    got = {r.replicate: r for r in comparison.replicate_differences(weighted).collect()}
    columns = ["replicate", "weight", "label",
               score_bin("churn_probability").alias("ours"),
               score_bin(CHAMPION_PROBABILITY).alias("theirs")]  # fmt: skip
    rows = weighted.select(*columns).collect()
    weighted.unpersist()
    assert sorted(got) == list(range(12))
    for b in range(12):
        mine = [r for r in rows if r.replicate == b]
        areas = {}
        for model in ("ours", "theirs"):
            counts = [Count(int(r.label), 0, r[model], r.weight) for r in mine]
            areas[model] = curves(counts)
        assert got[b].au_pr == pytest.approx(
            areas["ours"]["au_pr"] - areas["theirs"]["au_pr"], abs=1e-12
        )
        assert got[b].au_roc == pytest.approx(
            areas["ours"]["au_roc"] - areas["theirs"]["au_roc"], abs=1e-12
        )


def test_a_replicate_without_both_classes_is_left_out(spark):
    rows = [(0, 2, 1.0, 0.9, 0.8), (0, 1, 1.0, 0.7, 0.6), (1, 1, 1.0, 0.9, 0.2),
            (1, 3, 0.0, 0.1, 0.4)]  # fmt: skip
    df = local_frame(
        spark, rows, "replicate int, weight int, label double, churn_probability double, "
        "champion_probability double",
    )  # fmt: skip
    assert [r.replicate for r in comparison.replicate_differences(df).collect()] == [1]


def test_the_interval_is_the_same_on_two_runs_and_holds_the_difference(paired):
    first = comparison.bootstrap(paired)
    assert comparison.bootstrap(paired) == first
    assert first["replicates"] == 1000 and first["confidence"] == 0.95
    ours = evaluate(paired)["metrics"]["au_pr"]
    theirs = evaluate(paired, probability=CHAMPION_PROBABILITY)["metrics"]["au_pr"]
    assert first["au_pr"]["lower"] < ours - theirs < first["au_pr"]["upper"]
    assert first["au_pr"]["lower"] > 0  # the better scorer is clearly better on 1,500 rows


def test_the_interval_is_wider_on_fewer_rows(spark, paired):
    fewer = local_frame(spark, paired_rows(1500)[:300], PAIRED)
    wide, narrow = comparison.bootstrap(fewer), comparison.bootstrap(paired)
    for metric in comparison.METRICS:
        width = {k: v[metric]["upper"] - v[metric]["lower"] for k, v in
                 (("wide", wide), ("narrow", narrow))}  # fmt: skip
        assert width["wide"] > 1.5 * width["narrow"], metric


def test_a_model_against_itself_differs_by_exactly_nothing(spark):
    rows = [(r[0], r[1], r[2], r[3], r[2], r[3]) for r in paired_rows(400)]
    same = comparison.bootstrap(local_frame(spark, rows, PAIRED), replicates=200)
    assert same["au_pr"] == {"lower": 0.0, "upper": 0.0}
    assert same["au_roc"] == {"lower": 0.0, "upper": 0.0}


def test_percentile_interval_is_numpys():
    rng = random.Random(3)
    values = [rng.gauss(0, 1) for _ in range(999)]
    low, high = comparison.percentile_interval(values, 0.95)
    assert (low, high) == pytest.approx(tuple(np.percentile(values, [2.5, 97.5])), abs=1e-12)
    assert comparison.quantile([1.0, 2.0], 0.5) == 1.5
