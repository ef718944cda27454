"""The JSON records a run leaves for the steps after it, each defined here once: a model's
``metrics.json``, a scoring run's ``run_stats.json`` and ``drift.json``, and the tuning
record of a run whose tuning did not run.

The pipeline's evaluation step reads ``metrics.json`` on Vertex, where this package is not
installed: it reads the same keys from the plain document (``pipeline.components``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from churn_core.psi import OK


def _require_fields(cls, doc: Mapping, where: str, what: str) -> None:
    missing = dataclasses.MISSING
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is missing and f.default_factory is missing]  # fmt: skip
    if absent := [key for key in required if key not in doc]:
        raise ValueError(f"{where} is not {what}: it has no {absent}")


@dataclass(frozen=True)
class ModelMetrics:
    """A trained or tuned model's ``metrics.json``, written last by ``churn_ml.publish``, so
    its presence means a complete run. ``champion`` is the champion's evaluation on the same
    test rows and ``comparison`` the difference's summary (both None without a champion);
    the ``cv_*`` fields and ``folds`` are tuning's. Documents from before ``seed`` and the
    comparison were recorded read with them None."""

    pipeline_id: str
    pipeline_execution_dt: str
    operation: str
    model_uri: str
    metrics: dict
    params: dict | None = None
    seed: int | None = None
    rows: int | None = None
    confusion_matrix: dict | None = None
    roc_curve: dict | None = None
    pr_curve: dict | None = None
    feature_importances: list[dict] = dataclasses.field(default_factory=list)
    champion: dict | None = None
    comparison: dict | None = None
    selection_metric: str | None = None
    folds: int | None = None
    cv_mean_au_pr: float | None = None
    cv_results: list[dict] | None = None

    TUNING_ONLY: ClassVar = ("selection_metric", "folds", "cv_mean_au_pr", "cv_results")

    @property
    def au_pr(self) -> float:
        return float(self.metrics["au_pr"])

    def to_json(self) -> dict:
        doc = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {k: v for k, v in doc.items() if v is not None or k not in self.TUNING_ONLY}

    @classmethod
    def from_json(cls, doc: Mapping, where: str = "metrics.json") -> ModelMetrics:
        _require_fields(cls, doc, where, "a model's metrics")
        return cls(**{f.name: doc[f.name] for f in dataclasses.fields(cls) if f.name in doc})


@dataclass(frozen=True)
class RunStats:
    """What a scoring job counted (one prediction or one reject per input customer), for the
    check that compares it with the tables; ``usage`` is what its batch spent, added after."""

    pipeline_id: str
    pipeline_execution_dt: str
    model_version: str
    rows_in: int
    repeated_headers: int
    customers_in: int
    scored: int
    rejected: int
    usage: dict | None = None

    IDENTITY: ClassVar = ("pipeline_id", "pipeline_execution_dt", "model_version")
    COUNTS: ClassVar = ("rows_in", "customers_in", "scored", "rejected")

    def identity(self) -> dict:
        """Which run, day and model version the counts are of."""
        return {key: getattr(self, key) for key in self.IDENTITY}

    def counts(self) -> dict:
        return {key: getattr(self, key) for key in self.COUNTS}

    def to_json(self) -> dict:
        doc = dataclasses.asdict(self)
        return doc if self.usage is not None else {k: v for k, v in doc.items() if k != "usage"}

    @classmethod
    def from_json(cls, doc: Mapping, where: str = "run_stats.json") -> RunStats:
        _require_fields(cls, doc, where, "a scoring run's stats")
        return cls(**{f.name: doc[f.name] for f in dataclasses.fields(cls) if f.name in doc})


@dataclass(frozen=True)
class Drift:
    """One feature's drift, or the churn probability's (``feature`` None), against the
    training profile: PSI, the share of values training never saw, and the status."""

    psi: float
    unseen_share: float
    status: str
    feature: str | None = None

    def to_json(self) -> dict:
        doc = dataclasses.asdict(self)
        return doc if self.feature is not None else {k: v for k, v in doc.items() if k != "feature"}


@dataclass(frozen=True)
class DriftReport:
    """A scoring run's ``drift.json``: written by ``churn_ml.drift.report`` (its module
    docstring shows one), read by the scoring DAG's drift check."""

    pipeline_id: str
    pipeline_execution_dt: str
    model_version: str
    thresholds: dict
    baseline: bool  # False, with the ``reason``, when the model has no training profile
    reason: str | None
    rows: int
    features: tuple[Drift, ...]  # by PSI, highest first
    score: Drift | None
    status: str  # the worst of the features' and the score's

    @classmethod
    def unmeasured(cls, run: Mapping, thresholds: Mapping, reason: str) -> DriftReport:
        """The report of a run with no baseline to measure against, and why. ``run`` holds
        its pipeline_id, pipeline_execution_dt and model_version."""
        return cls(**run, thresholds=dict(thresholds), baseline=False, reason=reason, rows=0,
                   features=(), score=None, status=OK)  # fmt: skip

    def at(self, *statuses: str) -> list[Drift]:
        """The features whose status is one of ``statuses``, highest PSI first."""
        return [f for f in self.features if f.status in statuses]

    def to_json(self) -> dict:
        doc = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        doc["features"] = [f.to_json() for f in self.features]
        doc["score"] = self.score.to_json() if self.score else None
        return doc

    @classmethod
    def from_json(cls, doc: Mapping, where: str = "drift.json") -> DriftReport:
        _require_fields(cls, doc, where, "a drift report")
        fields = {f.name: doc[f.name] for f in dataclasses.fields(cls)}
        fields["features"] = tuple(Drift(**f) for f in doc["features"])
        fields["score"] = Drift(**doc["score"]) if doc["score"] else None
        return cls(**fields)


SKIPPED = "skipped"  # the status of a tuning record when tuning did not run


def tuning_skipped(reason: str, au_pr: float, threshold: float) -> dict:
    """The tuning record, in the tuning folder's metrics.json, of a run that did not tune.
    It travels to Vertex as a helper of the pipeline's skip step, so it reads no module name
    and spells ``SKIPPED`` out."""
    return {"status": "skipped", "reason": reason, "au_pr": au_pr, "threshold": threshold}


def is_skipped(record: Mapping | None) -> bool:
    """Whether a tuning folder's metrics.json records that tuning did not run."""
    return record is not None and record.get("status") == SKIPPED


def model_metrics(doc: Mapping | None, where: str) -> ModelMetrics | None:
    """A model folder's metrics.json as read (None when absent or when it records that
    tuning did not run); ``where`` names it in the error of a malformed one."""
    return None if doc is None or is_skipped(doc) else ModelMetrics.from_json(doc, where)
