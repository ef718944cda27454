"""Champion promotion around a training run: resolve the champion the run compares with,
then read the run's metrics, decide and update the registry."""

from __future__ import annotations

import dataclasses
import logging
import os

from churn_airflow import gcs
from churn_core import documents, layout, registry, run_records, stages

log = logging.getLogger(__name__)
# The champion event's extra key naming the day to re-score (a rollback's latest scored day).
RESCORE_DAY = "rescore_day"


def run_candidates(artifact_root: str, pipeline_id: str, attempt: str) -> list[registry.Candidate]:
    """The models one attempt of a run produced: training always, tuning unless skipped."""
    candidates = []
    for stage in stages.MODELS:
        uri = layout.metrics_file(artifact_root, stage, pipeline_id, attempt)
        doc = documents.read(uri, gcs.client(uri))
        run = run_records.model_metrics(doc, uri)
        if run is None:
            log.info("%s of %s: %s", stage.name, pipeline_id, doc["reason"] if doc else "no model")
            continue
        candidates.append(registry.Candidate.from_metrics(run, attempt))
    if not candidates:
        raise FileNotFoundError(
            f"attempt {attempt} of run {pipeline_id} left no metrics.json under {artifact_root}"
        )
    return candidates


def report_uri(artifact_root: str, candidate: registry.Candidate) -> str:
    """The HTML report of a candidate's run."""
    return layout.report_file(
        artifact_root, candidate.stage, candidate.pipeline_id, candidate.attempt
    )


def promote_run(
    values: dict,
    threshold: float,
    min_improvement: float = registry.MIN_IMPROVEMENT,
    mode: str = registry.AUTO,
    spent: dict | None = None,
) -> dict:
    """Register the models of the attempt that ``values`` ran, with what its pipeline ``spent``
    (``costs.pipeline_usage``), and promote the best one if it earns it (``mode``: auto,
    dry_run or off); returns the decision with its report's URI."""
    root, pipeline_id = values["artifact_root"], values["pipeline_id"]
    found = run_candidates(root, pipeline_id, values["attempt"])
    candidates = [dataclasses.replace(c, usage=spent) for c in found]
    decision = registry.store(root, gcs.client(root)).update(
        lambda doc: registry.promote(
            doc, candidates, threshold, registry.utc_now(), min_improvement, mode
        )
    )
    best = next(c for c in candidates if c.version == decision["version"])
    decision["report"] = report_uri(root, best)
    log.info("promotion of %s: %s", pipeline_id, decision["reason"])
    return decision


def model_present(model_uri: str) -> bool:
    """Whether a saved model's files are where its registry entry says."""
    metadata = f"{model_uri.rstrip('/')}/metadata"
    if metadata.startswith("gs://"):
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        bucket, name = layout.gcs_object(metadata)
        return bool(GCSHook().list(bucket, prefix=f"{name}/", max_results=1))
    return os.path.isdir(metadata.removeprefix("file://"))


def roll_back(artifact_root: str, version: str, reason: str, who: str) -> dict:
    """Make a registered version whose files exist the champion, recording who and why;
    returns the history's event. A ValueError says in one sentence why not."""

    def change(doc: dict) -> tuple[dict, dict]:
        entry = registry.require(doc, version)
        if not model_present(entry["model_uri"]):
            raise ValueError(
                f"version {version}'s model {entry['model_uri']} is missing: restore its files "
                "or roll back to another version"
            )
        moved = registry.set_champion(
            doc, version, registry.utc_now(), registry.manual_reason(who, reason)
        )
        return moved, moved["history"][-1]

    event = registry.store(artifact_root, gcs.client(artifact_root)).update(change)
    log.info("champion %s (was %s): %s", version, event["replaced"], event["reason"])
    return event


def event_extra(decision: dict) -> dict:
    """What the champion Asset event carries: the new version, the evidence and the report."""
    extra = {"version": decision["version"], "reason": decision["reason"],
             "report": decision["report"]}  # fmt: skip
    comparison = decision.get("comparison")
    if comparison and comparison.get("comparable"):
        pr = comparison["au_pr"]
        extra.update(
            replaced=comparison["champion"],
            rows=comparison["rows"],
            challenger_au_pr=pr["challenger"],
            champion_au_pr=pr["champion"],
            au_pr_delta=pr["delta"],
            au_pr_interval=[pr["lower"], pr["upper"]],
            confidence=comparison["confidence"],
        )
    return extra


def resolve_champion(artifact_root: str) -> dict:
    """The champion entry at this moment (batch scoring pins it for the whole run)."""
    return registry.champion(registry.store(artifact_root, gcs.client(artifact_root)).read())
