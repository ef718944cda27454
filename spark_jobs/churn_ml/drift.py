"""Data drift: the training profile of a model, and a day's drift against it.

Both come from bounded Spark aggregations; no row reaches the driver. Training and tuning
profile their training rows and test-split churn probabilities (``training_profile``) and
write the profile inside the model's folder before it is published (``layout.profile_uri``),
so it is versioned with the model and never changes. The scoring job counts the day's rows
in those bins in its one pass, in the compiled model's Python pass (``churn_ml.drift_counts``)
or, for a model it cannot compile, with ``observed_counts`` in an Observation, and turns the
counts into ``drift.json`` (``report``).

A profile (``profile.json``)::

    {"version": 1,
     "rows": 5625,          # training rows profiled
     "score_rows": 1407,    # test rows whose churn probability is profiled
     "features": [
       {"feature": "contract", "kind": "categorical",
        "categories": ["Month-to-month", "Two year", "One year"], "shares": [0.55, 0.24, 0.21]},
       {"feature": "monthly_charges", "kind": "numeric",
        "edges": [18.25, 20.05, ..., 118.75], "shares": [0.1, ..., 0.1]},
       ...],
     "score": {"feature": "churn_probability", "kind": "numeric", "edges": [...], "shares": [...]}}

Numeric bins: ``edges`` are the training minimum, the deciles (``percentile_approx``) and the
maximum, equal edges merged (a discrete value holding more than a tenth of the rows makes one
bin, never an empty one). Bin i holds ``edges[i] <= x < edges[i + 1]``, the last bin its upper
edge too. A day's value below the minimum counts in the first bin, above the maximum in the
last, and both count as out of range. Categorical bins: the training categories, most common
first, and one more for values training never saw (training share 0).

A drift report (``drift.json``)::

    {"pipeline_id": "20261129", "pipeline_execution_dt": "2026-11-29",
     "model_version": "20261129-training-k7f2q-1",
     "baseline": true, "reason": null,      # false and why when there is no profile
     "thresholds": {"warning": 0.1, "alert": 0.25},
     "rows": 411,                            # scored rows measured
     "features": [{"feature": "monthly_charges", "psi": 0.61, "unseen_share": 0.32,
                   "status": "alert"}, ...], # by PSI, highest first
     "score": {"psi": 0.3, "unseen_share": 0.0, "status": "alert"},
     "status": "alert"}                      # the worst of the features and the score

``unseen_share`` is the share of the day's rows with a category the training rows lacked
(categorical) or a value outside the training range (numeric). Statuses come from PSI alone
(``churn_core.psi``); unseen values raise it through their bin.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from churn_core import psi
from churn_core.run_records import Drift, DriftReport
from churn_ml.model import CHURN_PROBABILITY
from churn_ml.schema import CATEGORICAL_FEATURES, NUMERIC_FEATURES

PROFILE_VERSION = 1
NUMERIC_BINS = 10
QUANTILE_ACCURACY = 10_000  # percentile_approx's default: a relative rank error of 1e-4
NUMERIC, CATEGORICAL = "numeric", "categorical"


@dataclass(frozen=True)
class Bins:
    """One feature's training bins and the share of training rows in each."""

    feature: str
    shares: tuple[float, ...]
    edges: tuple[float, ...] = ()  # numeric: len(shares) + 1 edges
    categories: tuple[str, ...] = ()  # categorical: one per share

    @property
    def numeric(self) -> bool:
        return bool(self.edges)

    def as_dict(self) -> dict:
        if self.numeric:
            bounds = {"kind": NUMERIC, "edges": list(self.edges)}
        else:
            bounds = {"kind": CATEGORICAL, "categories": list(self.categories)}
        return {"feature": self.feature, **bounds, "shares": list(self.shares)}

    @classmethod
    def from_dict(cls, doc: Mapping) -> Bins:
        shares = tuple(doc["shares"])
        if doc["kind"] == NUMERIC:
            return cls(doc["feature"], shares, edges=tuple(doc["edges"]))
        return cls(doc["feature"], shares, categories=tuple(doc["categories"]))


@dataclass(frozen=True)
class Profile:
    features: tuple[Bins, ...]
    score: Bins
    rows: int
    score_rows: int

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": PROFILE_VERSION,
                "rows": self.rows,
                "score_rows": self.score_rows,
                "features": [b.as_dict() for b in self.features],
                "score": self.score.as_dict(),
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> Profile:
        doc = json.loads(text)
        if doc.get("version") != PROFILE_VERSION:
            raise ValueError(f"profile version {doc.get('version')}, expected {PROFILE_VERSION}")
        features = tuple(Bins.from_dict(f) for f in doc["features"])
        return cls(features, Bins.from_dict(doc["score"]), doc["rows"], doc["score_rows"])


# --- The profile: two bounded aggregations ------------------------------------------------

Profiled = tuple[tuple[Bins, ...], int]  # bins of some columns and the rows they count


def numeric_edges(df: DataFrame, columns: Sequence[str], bins: int = NUMERIC_BINS) -> dict:
    """Each column's bin edges: minimum, approximate quantiles, maximum, equal ones merged (one
    aggregation, one row to the driver)."""
    if not columns:
        return {}
    ranks = [i / bins for i in range(1, bins)]
    aggregates = []
    for c in columns:
        value = F.col(c).cast("double")
        aggregates += [F.min(value), F.percentile_approx(value, ranks, QUANTILE_ACCURACY)]
        aggregates.append(F.max(value))
    row = df.agg(*aggregates).first()
    edges = {}
    for i, c in enumerate(columns):
        low, quantiles, high = row[3 * i], row[3 * i + 1], row[3 * i + 2]
        if low is None:
            raise ValueError(f"cannot profile {c}: it has no values")
        merged = sorted({low, *quantiles, high})
        edges[c] = tuple(merged if len(merged) > 1 else merged * 2)
    return edges


def bin_index(value: Column, edges: Sequence[float]) -> Column:
    """The numeric bin of each value: how many inner edges it reaches (0 to len(edges) - 2)."""
    index = F.lit(0)
    for edge in edges[1:-1]:
        index = index + (value >= edge).cast("int")
    return F.when(value.isNotNull(), index)


def bin_counts(df: DataFrame, categorical: Sequence[str], edges: Mapping) -> DataFrame:
    """Pure transform: rows per (feature, bin), the bin a category or a numeric bin index, as
    text; one row per bin that holds any row (nulls are not counted)."""
    pairs = [(c, F.col(c).cast("string")) for c in categorical]
    pairs += [(c, bin_index(F.col(c).cast("double"), e).cast("string")) for c, e in edges.items()]
    cells = F.array(*(F.struct(F.lit(c).alias("feature"), b.alias("bin")) for c, b in pairs))
    return (
        df.select(F.explode(cells).alias("cell"))
        .where(F.col("cell.bin").isNotNull())
        .groupBy(F.col("cell.feature").alias("feature"), F.col("cell.bin").alias("bin"))
        .count()
    )


def profile_bins(
    df: DataFrame, categorical: Sequence[str], numeric: Sequence[str], bins: int = NUMERIC_BINS
) -> Profiled:
    """The bins of the given columns and the rows profiled: two aggregations, at most the
    bins' count of rows collected."""
    edges = numeric_edges(df, numeric, bins)
    counts: dict[str, dict[str, int]] = {c: {} for c in (*categorical, *numeric)}
    for row in bin_counts(df, categorical, edges).collect():
        counts[row["feature"]][row["bin"]] = row["count"]
    rows = max((sum(c.values()) for c in counts.values()), default=0)
    if not rows:
        raise ValueError("cannot profile no rows")
    profiled = []
    for c in categorical:
        ranked = sorted(counts[c].items(), key=lambda kv: (-kv[1], kv[0]))
        total = sum(n for _, n in ranked)
        shares = tuple(n / total for _, n in ranked)
        profiled.append(Bins(c, shares, categories=tuple(k for k, _ in ranked)))
    for c in numeric:
        total = sum(counts[c].values())
        shares = tuple(counts[c].get(str(i), 0) / total for i in range(len(edges[c]) - 1))
        profiled.append(Bins(c, shares, edges=edges[c]))
    return tuple(profiled), rows


def feature_bins(train: DataFrame) -> Profiled:
    """The model's features (``churn_ml.schema``) over the training rows."""
    return profile_bins(train, CATEGORICAL_FEATURES, NUMERIC_FEATURES)


def training_profile(features: Profiled, predictions: DataFrame) -> Profile:
    """The profile of a model: its ``feature_bins`` and its test predictions' churn probability."""
    (score,), score_rows = profile_bins(predictions, (), (CHURN_PROBABILITY,))
    return Profile(features[0], score, features[1], score_rows)


# --- A day's drift: counts in the scoring pass's Observation -------------------------------


def _conditions(bins: Bins) -> list[Column]:
    """What ``observed_counts`` counts for a feature: numeric, below each edge but the last,
    and above the last; categorical, each category. A scored row has every feature (cleaning
    rejects a missing one), so one count of the rows, ``_ROWS``, is every feature's total."""
    value = F.col(bins.feature)
    if bins.numeric:
        number = value.cast("double")
        return [*(number < e for e in bins.edges[:-1]), number > bins.edges[-1]]
    text = value.cast("string")
    return [text == c for c in bins.categories]


def _all_bins(profile: Profile) -> tuple[Bins, ...]:
    return (*profile.features, profile.score)


def _name(feature: int, condition: int) -> str:
    return f"drift_{feature}_{condition}"


_ROWS = "drift_rows"


def observed_names(profile: Profile) -> list[str]:
    """The names of ``observed_counts``' counts, in order (``drift_counts`` keeps them too)."""
    return [
        _ROWS,
        *(
            _name(i, j)
            for i, b in enumerate(_all_bins(profile))
            for j in range(len(_conditions(b)))
        ),
    ]


def observed_counts(profile: Profile, where: Column) -> list[Column]:
    """Aggregate columns for an Observation: the counts ``measure`` needs, over the rows
    ``where`` selects (the scored ones)."""
    conditions = [c for bins in _all_bins(profile) for c in _conditions(bins)]
    rows, *names = observed_names(profile)
    return [
        F.count_if(where).alias(rows),
        *(F.count_if(where & c).alias(n) for c, n in zip(conditions, names, strict=True)),
    ]


def day_shares(bins: Bins, counts: Sequence[int]) -> tuple[list[float], list[float], float, int]:
    """(training shares, day shares, unseen share, rows) of one feature's observed counts (its
    ``_conditions``' counts, then the rows); a categorical feature gains the unseen bin
    (training share 0)."""
    total = counts[-1]
    if bins.numeric:
        inner = counts[1:-2]  # below each inner edge
        in_bins = [b - a for a, b in zip([0, *inner], [*inner, total], strict=True)]
        unseen = counts[0] + counts[-2]
        expected = list(bins.shares)
    else:
        in_bins = [*counts[:-1], total - sum(counts[:-1])]
        unseen = in_bins[-1]
        expected = [*bins.shares, 0.0]
    if not total:
        return expected, [0.0] * len(expected), 0.0, 0
    return expected, [n / total for n in in_bins], unseen / total, total


def measure(profile: Profile, observed: Mapping[str, int]) -> tuple[list[dict], dict, int]:
    """(features, score, rows): each with its PSI and unseen share, from the Observation."""
    measured = []
    rows = 0
    for i, bins in enumerate(_all_bins(profile)):
        conditions = range(len(_conditions(bins)))
        counts = [*(observed[_name(i, j)] for j in conditions), observed[_ROWS]]
        expected, actual, unseen, total = day_shares(bins, counts)
        rows = max(rows, total)
        measured.append({
            "feature": bins.feature,
            "psi": psi.psi(expected, actual) if total else 0.0,
            "unseen_share": unseen,
        })  # fmt: skip
    *features, score = measured
    del score["feature"]
    return features, score, rows


def report(
    run: Mapping[str, str],
    thresholds: Mapping[str, float],
    profile: Profile | None,
    observed: Mapping[str, int] | None,
    reason: str | None = None,
) -> dict:
    """The drift.json document of a scoring run (module docstring; its type is
    ``churn_core.run_records.DriftReport``). ``run`` holds its pipeline_id,
    pipeline_execution_dt and model_version; without a profile, ``reason`` says why there is
    no baseline."""
    if profile is None:
        return DriftReport.unmeasured(run, thresholds, reason).to_json()

    def judged(item: dict) -> Drift:
        return Drift(**item, status=psi.status(item["psi"], thresholds["warning"],
                                               thresholds["alert"]))  # fmt: skip

    measured, score, rows = measure(profile, observed)
    features = sorted(map(judged, measured), key=lambda f: (-f.psi, f.feature))
    score = judged(score)
    return DriftReport(
        **run,
        thresholds=dict(thresholds),
        baseline=True,
        reason=None if rows else "no customer was scored",
        rows=rows,
        features=tuple(features),
        score=score,
        status=psi.worst(item.status for item in (*features, score)),
    ).to_json()


def table_rows(document: Mapping) -> list[tuple]:
    """(feature, psi, unseen_share, status) rows of the ``feature_drift`` table; the score is
    the row named ``churn_probability``. No rows without a baseline."""
    if not document["baseline"]:
        return []
    score = document["score"]
    rows = [(f["feature"], f["psi"], f["unseen_share"], f["status"]) for f in document["features"]]
    return [*rows, (CHURN_PROBABILITY, score["psi"], score["unseen_share"], score["status"])]
