"""Champion promotion around a training run: resolve the champion the run compares with,
then read the run's metrics, decide and update the registry."""

from __future__ import annotations

import dataclasses
import json
import logging
import os

from churn_airflow import registry
from churn_core import layout

log = logging.getLogger(__name__)
# The champion event's extra key naming the day to re-score (a rollback's latest scored day).
RESCORE_DAY = "rescore_day"


def read_json(uri: str) -> dict | None:
    """A JSON document from GCS (through the Airflow connection) or a local path; None if absent."""
    if uri.startswith("gs://"):
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        bucket, name = layout.gcs_object(uri)
        hook = GCSHook()
        if not hook.exists(bucket, name):
            return None
        return json.loads(hook.download(bucket, name))
    try:
        with open(uri.removeprefix("file://")) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def write_json(uri: str, doc: dict) -> None:
    """Replace a JSON document on GCS (through the Airflow connection) or a local path, whole."""
    text = json.dumps(doc, indent=2) + "\n"
    if uri.startswith("gs://"):
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        bucket, name = layout.gcs_object(uri)
        GCSHook().upload(bucket, name, data=text, mime_type="application/json")
        return
    path = uri.removeprefix("file://")
    with open(f"{path}.tmp", "w") as f:
        f.write(text)
    os.replace(f"{path}.tmp", path)


def run_candidates(artifact_root: str, pipeline_id: str, attempt: str) -> list[registry.Candidate]:
    """The models one attempt of a run produced: training always, tuning unless skipped."""
    candidates = []
    for operation in layout.OPERATIONS:
        doc = read_json(layout.metrics_file(artifact_root, operation, pipeline_id, attempt))
        if doc is None or doc.get("status") == "skipped":
            log.info("%s of %s: %s", operation, pipeline_id, doc["reason"] if doc else "no model")
            continue
        candidates.append(registry.Candidate.from_metrics(doc, attempt))
    if not candidates:
        raise FileNotFoundError(
            f"attempt {attempt} of run {pipeline_id} left no metrics.json under {artifact_root}"
        )
    return candidates


def registry_store(artifact_root: str):
    if artifact_root.startswith("gs://"):
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        return registry.GcsStore(registry.registry_uri(artifact_root), GCSHook().get_conn())
    return registry.store(artifact_root)


def report_uri(artifact_root: str, candidate: registry.Candidate) -> str:
    """The HTML report of a candidate's run."""
    folder = layout.metrics_uri(
        artifact_root, candidate.operation, candidate.pipeline_id, candidate.attempt
    )
    return f"{folder}/report.html"


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
    decision = registry_store(root).update(
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

    event = registry_store(artifact_root).update(change)
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
    return registry.champion(registry_store(artifact_root).read())


def champion_to_score(artifact_root: str) -> dict | None:
    """The champion a training run scores beside its own model: version, model URI and the
    split seed it was trained with (from its run's metrics.json for entries older than the
    seed's record; None when unknown); None when the registry has no champion."""
    doc = registry_store(artifact_root).read()
    entry = registry.find(doc, doc["champion"])
    if entry is None:
        return None
    seed = entry.get("seed")
    if seed is None and "attempt" in entry:
        run = read_json(
            layout.metrics_file(
                artifact_root, entry["operation"], entry["pipeline_id"], entry["attempt"]
            )
        )
        seed = (run or {}).get("seed")
    return {"version": entry["version"], "model_uri": entry["model_uri"], "seed": seed}
