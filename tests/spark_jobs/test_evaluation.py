"""Metrics from bounded counts: binning, curves, confusion matrix and weighted scores."""

from __future__ import annotations

import math
import random

import pytest
from pyspark.ml.evaluation import BinaryClassificationEvaluator, MulticlassClassificationEvaluator
from pyspark.testing import assertDataFrameEqual

from churn_ml import evaluation
from churn_ml.evaluation import Count
from churn_ml.frames import local_frame

PREDICTIONS = "label double, prediction double, churn_probability double"


def test_binned_counts(spark):
    predictions = local_frame(
        spark,
        [
            (1.0, 1.0, 1.0),  # a probability of 1 goes to the top bin, not past it
            (1.0, 1.0, 0.95),
            (0.0, 1.0, 0.95),
            (0.0, 1.0, 0.99),
            (0.0, 0.0, 0.0),
            (0.0, 0.0, 0.04),
            (1.0, 0.0, 0.25),
        ],
        PREDICTIONS,
    )
    expected = local_frame(
        spark,
        [(1, 1, 10, 1), (1, 1, 9, 1), (0, 1, 9, 2), (0, 0, 0, 2), (1, 0, 2, 1)],
        "label int, prediction int, bin int, count long",
    )
    assertDataFrameEqual(evaluation.binned_counts(predictions, bins=10), expected)


def test_curves_of_a_perfect_classifier():
    counts = [Count(1, 1, 9, 30), Count(1, 1, 8, 10), Count(0, 0, 1, 50), Count(0, 0, 0, 10)]
    result = evaluation.curves(counts, bins=10)
    assert result["au_roc"] == pytest.approx(1.0)
    assert result["au_pr"] == pytest.approx(1.0)
    assert result["roc_curve"]["thresholds"] == [0.9, 0.8, 0.1, 0.0]
    assert result["roc_curve"]["tpr"] == [0.75, 1.0, 1.0, 1.0]
    assert result["roc_curve"]["fpr"] == [0.0, 0.0, 50 / 60, 1.0]
    assert result["pr_curve"]["precision"] == [1.0, 1.0, 40 / 90, 40 / 100]


def test_curves_of_a_reversed_classifier():
    counts = [Count(0, 1, 9, 5), Count(1, 0, 1, 5)]
    result = evaluation.curves(counts, bins=10)
    assert result["au_roc"] == pytest.approx(0.0)
    assert result["au_pr"] == pytest.approx(0.5 * 0.5)  # precision 0 until the last point


def test_curves_hand_computed():
    """3 positives, 4 negatives, two score levels; AUROC = P(score+ > score-) with ties as 1/2."""
    counts = [Count(1, 1, 8, 2), Count(0, 1, 8, 1), Count(1, 0, 3, 1), Count(0, 0, 3, 3)]
    result = evaluation.curves(counts, bins=10)
    assert result["au_roc"] == pytest.approx((2 * 3 + 2 * 1 / 2 + 1 * 3 / 2) / 12)
    assert result["roc_curve"] == {
        "thresholds": [0.8, 0.3],
        "fpr": [0.25, 1.0],
        "tpr": [pytest.approx(2 / 3), 1.0],
    }
    assert result["pr_curve"]["precision"] == [pytest.approx(2 / 3), pytest.approx(3 / 7)]
    # trapezoids from (recall 0, precision 2/3) to (2/3, 2/3) to (1, 3/7)
    assert result["au_pr"] == pytest.approx(79 / 126)


def test_curves_need_both_classes():
    with pytest.raises(ValueError, match="both classes"):
        evaluation.curves([Count(1, 1, 5, 3)], bins=10)


def test_confusion_matrix_is_actual_by_predicted_no_then_yes():
    counts = [
        Count(label=0, prediction=0, bin=1, n=5),  # true negatives
        Count(label=0, prediction=1, bin=7, n=2),  # false positives
        Count(label=1, prediction=0, bin=2, n=1),  # false negatives
        Count(label=1, prediction=1, bin=9, n=3),  # true positives
        Count(label=1, prediction=1, bin=8, n=1),
    ]
    assert evaluation.confusion_matrix(counts) == [[5, 2], [1, 4]]


def test_weighted_scores_hand_computed():
    scores = evaluation.weighted_scores([[5, 2], [1, 4]])
    assert scores["accuracy"] == pytest.approx(9 / 12)
    assert scores["weighted_precision"] == pytest.approx(7 / 12 * 5 / 6 + 5 / 12 * 4 / 6)
    assert scores["weighted_recall"] == pytest.approx(9 / 12)
    assert scores["f1"] == pytest.approx(7 / 12 * 10 / 13 + 5 / 12 * 8 / 11)


def test_weighted_scores_with_an_empty_predicted_class():
    scores = evaluation.weighted_scores([[6, 0], [4, 0]])  # never predicts yes
    assert scores["accuracy"] == pytest.approx(0.6)
    assert scores["weighted_precision"] == pytest.approx(0.6 * 0.6)
    assert scores["f1"] == pytest.approx(0.6 * (2 * 0.6 * 1 / 1.6))


def _noisy_predictions(spark, n: int = 400, seed: int = 11):
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = 1.0 if rng.random() < 0.3 else 0.0
        score = min(max(rng.gauss(0.6 if label else 0.35, 0.2), 0.0), 1.0)
        rows.append((label, 1.0 if score > 0.5 else 0.0, score))
    return local_frame(spark, rows, PREDICTIONS)


def test_evaluate_agrees_with_spark_evaluators(spark):
    predictions = _noisy_predictions(spark).cache()
    report = evaluation.evaluate(predictions)
    binary = BinaryClassificationEvaluator(rawPredictionCol="churn_probability", labelCol="label")
    expected_roc = binary.setMetricName("areaUnderROC").evaluate(predictions)
    expected_pr = binary.setMetricName("areaUnderPR").evaluate(predictions)
    assert 0.6 < expected_roc < 0.95  # a real, imperfect classifier
    assert report["metrics"]["au_roc"] == pytest.approx(expected_roc, abs=0.01)
    assert report["metrics"]["au_pr"] == pytest.approx(expected_pr, abs=0.02)

    multi = MulticlassClassificationEvaluator(labelCol="label", predictionCol="prediction")
    for ours, theirs in [
        ("accuracy", "accuracy"),
        ("f1", "f1"),
        ("weighted_precision", "weightedPrecision"),
        ("weighted_recall", "weightedRecall"),
    ]:
        expected = multi.setMetricName(theirs).evaluate(predictions)
        assert report["metrics"][ours] == pytest.approx(expected, abs=1e-9), ours

    rows = predictions.collect()
    tn = sum(1 for r in rows if r.label == 0 and r.prediction == 0)
    fp = sum(1 for r in rows if r.label == 0 and r.prediction == 1)
    fn = sum(1 for r in rows if r.label == 1 and r.prediction == 0)
    tp = sum(1 for r in rows if r.label == 1 and r.prediction == 1)
    assert report["confusion_matrix"] == {"labels": ["no", "yes"], "matrix": [[tn, fp], [fn, tp]]}
    assert report["rows"] == len(rows) == 400
    predictions.unpersist()


def test_evaluate_bounds_the_curves(spark):
    report = evaluation.evaluate(_noisy_predictions(spark, n=300, seed=3), bins=20)
    for curve, keys in [("roc_curve", ("fpr", "tpr")), ("pr_curve", ("recall", "precision"))]:
        points = report[curve]
        assert 1 < len(points["thresholds"]) <= 21
        assert all(len(points[k]) == len(points["thresholds"]) for k in keys)
        assert points["thresholds"] == sorted(points["thresholds"], reverse=True)
    assert report["roc_curve"]["fpr"][-1] == report["roc_curve"]["tpr"][-1] == 1.0
    assert all(math.isfinite(v) for v in report["metrics"].values())
