"""Classification metrics from one bounded Spark aggregation, never the whole prediction set.

Predictions are grouped by (label, prediction, score bin); at most 2 x 2 x (bins + 1) rows
reach the driver. The confusion matrix, the weighted scores and the ROC and PR curves all
come from those counts, and the areas are trapezoids over the binned curves.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from churn_ml.model import CHURN_PROBABILITY, LABEL_INDEX, PREDICTION
from churn_ml.schema import LABEL_VALUES

DEFAULT_BINS = 200


@dataclass(frozen=True)
class Count:
    label: int
    prediction: int
    bin: int
    n: int


def score_bin(probability: str, bins: int = DEFAULT_BINS) -> Column:
    """The bin k of a probability p: k / bins <= p < (k + 1) / bins, and p = 1 in the top bin."""
    return F.least(F.floor(F.col(probability) * bins), F.lit(bins)).cast("int")


def binned_counts(
    predictions: DataFrame,
    bins: int = DEFAULT_BINS,
    probability: str = CHURN_PROBABILITY,
    prediction: str = PREDICTION,
) -> DataFrame:
    """Pure transform: row counts per (label, prediction, churn-probability bin)."""
    return predictions.groupBy(
        F.col(LABEL_INDEX).cast("int").alias("label"),
        F.col(prediction).cast("int").alias("prediction"),
        score_bin(probability, bins).alias("bin"),
    ).count()


def collect_counts(predictions: DataFrame, bins: int = DEFAULT_BINS, **columns: str) -> list[Count]:
    rows = binned_counts(predictions, bins, **columns).collect()
    return [Count(r["label"], r["prediction"], r["bin"], r["count"]) for r in rows]


def _trapezoid(xs: list[float], ys: list[float]) -> float:
    segments = zip(xs, xs[1:], ys, ys[1:], strict=False)
    return sum((x1 - x0) * (y0 + y1) / 2 for x0, x1, y0, y1 in segments)


def curves(counts: Iterable[Count], bins: int = DEFAULT_BINS) -> dict:
    """ROC and PR points at thresholds k / bins, from the highest threshold down."""
    positives = [0] * (bins + 1)
    negatives = [0] * (bins + 1)
    for c in counts:
        (positives if c.label == 1 else negatives)[c.bin] += c.n
    total_pos, total_neg = sum(positives), sum(negatives)
    if not total_pos or not total_neg:
        raise ValueError("metrics need both classes in the evaluated rows")
    tp = fp = 0
    thresholds, fpr, tpr, precision = [], [], [], []
    for k in range(bins, -1, -1):
        if not positives[k] and not negatives[k]:
            continue
        tp += positives[k]
        fp += negatives[k]
        thresholds.append(k / bins)
        fpr.append(fp / total_neg)
        tpr.append(tp / total_pos)
        precision.append(tp / (tp + fp))
    roc_x, roc_y = [0.0, *fpr], [0.0, *tpr]
    pr_x, pr_y = [0.0, *tpr], [precision[0], *precision]
    return {
        "au_roc": _trapezoid(roc_x, roc_y),
        "au_pr": _trapezoid(pr_x, pr_y),
        "roc_curve": {"thresholds": thresholds, "fpr": fpr, "tpr": tpr},
        "pr_curve": {"thresholds": thresholds, "recall": tpr, "precision": precision},
    }


def confusion_matrix(counts: Iterable[Count]) -> list[list[int]]:
    """matrix[actual][predicted], both indexed as LABEL_VALUES (no = 0, yes = 1)."""
    matrix = [[0, 0], [0, 0]]
    for c in counts:
        matrix[c.label][c.prediction] += c.n
    return matrix


def weighted_scores(matrix: list[list[int]]) -> dict[str, float]:
    """Accuracy and support-weighted precision, recall and F1, as Spark's evaluators define them."""
    total = sum(map(sum, matrix))
    precision = recall = f1 = 0.0
    for k in range(len(matrix)):
        support = sum(matrix[k])
        predicted = sum(row[k] for row in matrix)
        p = matrix[k][k] / predicted if predicted else 0.0
        r = matrix[k][k] / support if support else 0.0
        weight = support / total
        precision += weight * p
        recall += weight * r
        f1 += weight * (2 * p * r / (p + r) if p + r else 0.0)
    accuracy = sum(matrix[k][k] for k in range(len(matrix))) / total
    return {
        "accuracy": accuracy,
        "f1": f1,
        "weighted_precision": precision,
        "weighted_recall": recall,
    }


def evaluate(predictions: DataFrame, bins: int = DEFAULT_BINS, **columns: str) -> dict:
    """Scalar metrics, confusion matrix and curves of a prediction set (one Spark job).

    ``columns`` may name other ``probability`` and ``prediction`` columns (the champion's).
    """
    counts = collect_counts(predictions, bins, **columns)
    matrix = confusion_matrix(counts)
    curve_data = curves(counts, bins)
    scalars = {
        "au_roc": curve_data.pop("au_roc"),
        "au_pr": curve_data.pop("au_pr"),
        **weighted_scores(matrix),
    }
    return {
        "metrics": scalars,
        "rows": sum(map(sum, matrix)),
        "confusion_matrix": {"labels": list(LABEL_VALUES), "matrix": matrix},
        **curve_data,
    }
