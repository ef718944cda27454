"""The model registry: one JSON document of model versions with a champion pointer.

Decisions are pure functions of the document; the two stores make read-modify-write atomic
and safe under concurrent runs: a file lock plus rename locally, generation preconditions
on GCS. A rollback is the ``customer_churn_rollback`` DAG, which moves the champion and
re-scores; ``churn registry --root ROOT promote VERSION --reason TEXT``
(``churn_tools.registry_cli``) triggers it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from churn_core import documents, layout, run_records, stages
from churn_core.layout import MODEL_NAME
from churn_core.run_records import ModelMetrics
from churn_core.stages import Stage

CHAMPION, CANDIDATE, BELOW_THRESHOLD, RETIRED = (
    "champion",
    "candidate",
    "below-threshold",
    "retired",
)


def registry_uri(artifact_root: str) -> str:
    return f"{artifact_root.rstrip('/')}/registry/{MODEL_NAME}.json"


KEPT_BACKUPS = 10  # earlier versions of the document each store keeps beside it


class CorruptRegistry(RuntimeError):
    """The registry document is not JSON; the message names the earlier version to restore."""


def backups_uri(uri: str) -> str:
    """The folder of a registry document's earlier versions, named in the order written."""
    return uri.removesuffix(".json") + ".backups"


def _parsed(text: str, uri: str, backups: Callable[[], list[str]]) -> dict:
    """The document, or CorruptRegistry naming the newest of its ``backups()`` to restore."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        kept = backups()
        restore = f"copy its last good version {kept[-1]} over it" if kept else "none is kept"
        raise CorruptRegistry(
            f"the registry document {uri} is not valid JSON ({err.msg}, line {err.lineno}); "
            f"{restore}"
        ) from None


def empty() -> dict:
    return {"model": MODEL_NAME, "champion": None, "versions": [], "history": []}


MIN_IMPROVEMENT = 0.005  # of AUPR, at the lower bound of the comparison's interval
AUTO, DRY_RUN, OFF = "auto", "dry_run", "off"
MODES = (AUTO, DRY_RUN, OFF)
# What a version's entry keeps of its run's comparison (the report has the rest).
EVIDENCE = ("champion", "comparable", "reason", "rows", "replicates", "confidence",
            "au_pr", "au_roc")  # fmt: skip


@dataclass(frozen=True)
class Candidate:
    """A model one attempt of a run produced, from its metrics.json.

    ``comparison`` is how it did against the champion the run started with, on the same
    test rows; None when the run started without a champion.
    """

    pipeline_id: str
    operation: str
    attempt: str
    model_uri: str
    metrics: dict
    seed: int | None = None
    comparison: dict | None = None
    usage: dict | None = None  # what the run's pipeline spent, priced (churn_airflow.costs)

    @property
    def version(self) -> str:
        return layout.model_version(self.pipeline_id, self.stage, self.attempt)

    @property
    def stage(self) -> Stage:
        return stages.of_operation(self.operation)

    @property
    def au_pr(self) -> float:
        return float(self.metrics["au_pr"])

    @property
    def scored_champion(self) -> str | None:
        return self.comparison["champion"] if self.comparison else None

    @classmethod
    def from_metrics(cls, run: ModelMetrics, attempt: str) -> Candidate:
        compared = run.comparison
        evidence = {k: compared[k] for k in EVIDENCE if k in compared} if compared else None
        return cls(
            run.pipeline_id, run.operation, attempt, run.model_uri, run.metrics, run.seed, evidence
        )


def find(doc: dict, version: str | None) -> dict | None:
    return next((v for v in doc["versions"] if v["version"] == version), None)


def _signed(x: float) -> str:
    return f"{x:+.3f}".replace("-", "\u2212")


def evidence_text(best: Candidate) -> str:
    """E.g. ``challenger V 0.662 vs champion C 0.655 on 1,409 rows, AUPR Δ +0.007 [-0.004,
    +0.018] (95%)``, with true minus signs."""
    c = best.comparison
    pr = c["au_pr"]
    return (
        f"challenger {best.version} {pr['challenger']:.3f} vs champion {c['champion']} "
        f"{pr['champion']:.3f} on {c['rows']:,} rows, AUPR \u0394 {_signed(pr['delta'])} "
        f"[{_signed(pr['lower'])}, {_signed(pr['upper'])}] ({c['confidence']:.0%})"
    )


def decide(
    doc: dict, candidates: list[Candidate], threshold: float, min_improvement: float
) -> tuple[Candidate, bool, str]:
    """(the run's best model, whether it earns the champion's place, why).

    The threshold is a sanity floor on the best model's own test AUPR. Above it, with no
    champion when the run started, the model is promoted. With one, the run scored both on
    its test rows: the model is promoted when the interval of challenger minus champion AUPR
    lies above zero and its lower bound reaches ``min_improvement``. The decision holds only
    if that champion is still the registry's (compare-and-swap); an incomparable champion
    is never replaced automatically.
    """
    if not candidates:
        raise ValueError("a run must produce at least one model to register")
    scored = {c.scored_champion for c in candidates}
    if len(scored) != 1:
        raise ValueError(f"the run's models were compared with different champions: {scored}")
    best = max(candidates, key=lambda c: (c.au_pr, c.stage == stages.TRAINING))
    return best, *_verdict(doc, candidates, best, scored.pop(), threshold, min_improvement)


def _verdict(
    doc: dict,
    candidates: list[Candidate],
    best: Candidate,
    expected: str | None,
    threshold: float,
    min_improvement: float,
) -> tuple[bool, str]:
    current = doc["champion"]
    if best.au_pr < threshold:
        return False, (
            f"{best.version}: test AUPR {best.au_pr:.3f} is below the threshold {threshold} "
            "(the sanity floor)"
        )
    if current != expected and current not in {c.version for c in candidates}:
        return False, (
            f"the champion changed from {expected or 'none'} to {current} while this run "
            f"scored {expected or 'no champion'}: {best.version} not promoted"
        )
    if expected is None:
        return True, (
            f"{best.version}: test AUPR {best.au_pr:.3f} passes the threshold {threshold} "
            "and there is no champion"
        )
    if not best.comparison["comparable"]:
        return False, (
            f"{best.comparison['reason']}; it is not compared, so {best.version} is not "
            "promoted automatically (promote it by hand with the registry CLI if it should be)"
        )
    lower = best.comparison["au_pr"]["lower"]
    if lower > 0 and lower >= min_improvement:
        return True, f"{evidence_text(best)}: promoted"
    return False, (
        f"{evidence_text(best)}: not promoted (the lower bound must be above zero and reach "
        f"{_signed(min_improvement)})"
    )


def register(doc: dict, candidates: list[Candidate], threshold: float, now: str) -> dict:
    """The document with the attempt's candidates as versions (registering the same versions
    again replaces their entries); the champion pointer and history are unchanged."""
    new = {c.version for c in candidates}
    versions = [dict(v) for v in doc["versions"] if v["version"] not in new]
    for c in candidates:
        versions.append({
            "version": c.version,
            "pipeline_id": c.pipeline_id,
            "operation": c.operation,
            "attempt": c.attempt,
            "model_uri": c.model_uri,
            "metrics": c.metrics,
            "seed": c.seed,
            "comparison": c.comparison,
            "usage": c.usage,
            "registered_at": now,
            "status": CANDIDATE if c.au_pr >= threshold else BELOW_THRESHOLD,
        })  # fmt: skip
    current = doc["champion"]
    for v in versions:
        if v["version"] == current:
            v["status"] = CHAMPION
    return {**doc, "versions": versions}


def _moved(doc: dict, champion: str) -> dict:
    """The document with ``champion`` as the champion and the previous one retired."""
    versions = []
    for v in doc["versions"]:
        status = v["status"]
        if v["version"] == champion:
            status = CHAMPION
        elif status == CHAMPION:
            status = RETIRED
        versions.append({**v, "status": status})
    return {**doc, "champion": champion, "versions": versions}


def promote(
    doc: dict,
    candidates: list[Candidate],
    threshold: float,
    now: str,
    min_improvement: float = MIN_IMPROVEMENT,
    mode: str = AUTO,
) -> tuple[dict, dict]:
    """Register an attempt's candidates as new versions and, in ``auto`` mode, make the best
    one champion if ``decide`` says it earns it. ``dry_run`` decides and records the decision
    in the history, marked so, without moving the champion; ``off`` only registers.
    Returns (document, decision); ``decision["promoted"]`` says whether the champion moved.
    """
    if mode not in MODES:
        raise ValueError(f"promotion mode {mode!r}: use one of {MODES}")
    registered = register(doc, candidates, threshold, now)
    best, earns, reason = decide(doc, candidates, threshold, min_improvement)
    champion = doc["champion"]
    decision = {"promoted": False, "version": best.version, "champion": champion,
                "mode": mode, "reason": reason, "at": now,
                "compared_with": best.scored_champion, "comparison": best.comparison}  # fmt: skip
    if mode == OFF:
        decision["reason"] = f"promotion is off for this run: {best.version} registered only"
        return registered, decision
    if mode == DRY_RUN:
        decision.update(
            would_promote=earns, reason=f"dry run, {'would' if earns else 'would not'} promote: "
            f"{reason}; the champion stays {champion or 'unset'}"
        )  # fmt: skip
        return {**registered, "history": [*doc["history"], decision]}, decision
    if not earns:
        return registered, decision
    decision.update(promoted=True, champion=best.version)
    moved = _moved(registered, best.version)
    return {**moved, "history": [*doc["history"], decision]}, decision


def set_champion(doc: dict, version: str, now: str, reason: str = "manual") -> dict:
    """Manual promotion or rollback to a registered version, recording why and what it
    replaced."""
    require(doc, version)
    event = {
        "promoted": True,
        "version": version,
        "champion": version,
        "replaced": doc["champion"],
        "reason": reason,
        "at": now,
    }
    return {**_moved(doc, version), "history": [*doc["history"], event]}


def require(doc: dict, version: str) -> dict:
    """The registered entry of ``version``; ValueError naming the known ones if there is none."""
    entry = find(doc, version)
    if entry is None:
        known = [v["version"] for v in doc["versions"]]
        raise ValueError(f"version {version!r} is not registered; known: {known}")
    return entry


def champion(doc: dict) -> dict:
    entry = find(doc, doc["champion"])
    if entry is None:
        raise LookupError("the registry has no champion yet: run the training DAG first")
    return entry


# --- stores --------------------------------------------------------------------------------


class LocalStore:
    """A JSON file updated under an exclusive lock, written to a temp file and renamed."""

    def __init__(self, path: str):
        self.path = path.removeprefix("file://")
        self.backups = backups_uri(self.path)

    def read(self) -> dict:
        try:
            with open(self.path) as f:
                text = f.read()
        except FileNotFoundError:
            return empty()
        return _parsed(text, self.path, self._kept)

    def _kept(self) -> list[str]:
        names = sorted(os.listdir(self.backups)) if os.path.isdir(self.backups) else []
        return [os.path.join(self.backups, name) for name in names]

    def _keep_current(self) -> None:
        """Hard-link the document about to be replaced as the newest backup; prune the rest."""
        os.makedirs(self.backups, exist_ok=True)
        kept = self._kept()
        number = int(os.path.basename(kept[-1]).split(".")[0]) + 1 if kept else 1
        os.link(self.path, os.path.join(self.backups, f"{number:09d}.json"))
        for old in kept[: max(0, len(kept) + 1 - KEPT_BACKUPS)]:
            os.unlink(old)

    def update(self, change: Callable[[dict], tuple[dict, Any]]) -> Any:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with open(self.path + ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            doc, result = change(self.read())
            fd, staged = tempfile.mkstemp(dir=os.path.dirname(self.path), suffix=".tmp")
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump(doc, f, indent=2)
                    f.flush()
                    os.fsync(f.fileno())
                if os.path.exists(self.path):
                    self._keep_current()
                os.replace(staged, self.path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(staged)
                raise
        return result


class GcsStore:
    """A GCS object updated with ``if_generation_match``; a lost race re-reads and retries."""

    def __init__(self, uri: str, client=None, attempts: int = 10):
        self.bucket, self.name = documents.bucket_of(uri, client)
        self.attempts = attempts

    def _get(self) -> tuple[dict, int, str]:
        """The document, its generation and text, read from that very generation (0: none)."""
        blob = self.bucket.get_blob(self.name)
        if blob is None:
            return empty(), 0, ""
        generation = blob.generation  # before the download, which may reset it
        text = blob.download_as_text(if_generation_match=generation)
        return _parsed(text, f"gs://{self.bucket.name}/{self.name}", self._kept), generation, text

    def _kept(self) -> list[str]:
        blobs = self.bucket.list_blobs(prefix=backups_uri(self.name) + "/")
        return [f"gs://{self.bucket.name}/{name}" for name in sorted(b.name for b in blobs)]

    def _keep(self, text: str, generation: int) -> None:
        """Keep the replaced generation's text as the newest backup; prune the rest."""
        folder = backups_uri(self.name)
        self.bucket.blob(f"{folder}/{generation:020d}.json").upload_from_string(
            text, content_type="application/json"
        )
        kept = self._kept()
        for old in kept[: max(0, len(kept) - KEPT_BACKUPS)]:
            self.bucket.blob(old.removeprefix(f"gs://{self.bucket.name}/")).delete()

    def read(self) -> dict:
        return self._until_unchanged(lambda: self._get()[0])

    def update(self, change: Callable[[dict], tuple[dict, Any]]) -> Any:
        def read_change_write():
            current, generation, text = self._get()
            doc, result = change(current)
            self.bucket.blob(self.name).upload_from_string(
                json.dumps(doc, indent=2),
                content_type="application/json",
                if_generation_match=generation,
            )
            if generation:
                self._keep(text, generation)
            return result

        return self._until_unchanged(read_change_write)

    def _until_unchanged(self, step: Callable[[], Any]) -> Any:
        """``step`` again while another writer changes the object under it (412)."""
        from google.api_core.exceptions import PreconditionFailed

        for _ in range(self.attempts):
            with contextlib.suppress(PreconditionFailed):
                return step()
        raise RuntimeError(f"registry gs://{self.bucket.name}/{self.name} kept changing; retry")


def store(artifact_root: str, client=None) -> LocalStore | GcsStore:
    """The registry of an artifact root; on GCS through ``client`` (as ``churn_core.documents``)."""
    uri = registry_uri(artifact_root)
    return GcsStore(uri, client) if uri.startswith("gs://") else LocalStore(uri)


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


ROLLBACK_DAG = "customer_churn_rollback"


def manual_reason(who: str, reason: str) -> str:
    """How the history records a champion someone chose."""
    return f"rollback by {who}: {reason}"


def champion_to_score(artifact_root: str, client=None) -> dict | None:
    """The champion a training run scores beside its own model: version, model URI and the
    split seed it was trained with (from its run's metrics.json for entries older than the
    seed's record; None when unknown); None when the registry has no champion."""
    doc = store(artifact_root, client).read()
    entry = find(doc, doc["champion"])
    if entry is None:
        return None
    seed = entry.get("seed")
    if seed is None and "attempt" in entry:
        uri = layout.metrics_file(
            artifact_root, stages.of_operation(entry["operation"]), entry["pipeline_id"],
            entry["attempt"],
        )  # fmt: skip
        run = run_records.model_metrics(documents.read(uri, client), uri)
        seed = run.seed if run else None
    return {"version": entry["version"], "model_uri": entry["model_uri"], "seed": seed}
