"""Champion promotion after a training run: read its metrics, decide, update the registry."""

from __future__ import annotations

import json
import logging

from churn_airflow import registry
from churn_ml import layout

log = logging.getLogger(__name__)


def read_json(uri: str) -> dict | None:
    """A JSON document from GCS (through the Airflow connection) or a local path; None if absent."""
    if uri.startswith("gs://"):
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        bucket, _, name = uri.removeprefix("gs://").partition("/")
        hook = GCSHook()
        if not hook.exists(bucket, name):
            return None
        return json.loads(hook.download(bucket, name))
    try:
        with open(uri.removeprefix("file://")) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


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


def promote_run(values: dict, threshold: float) -> dict:
    """Register the models of the attempt that ``values`` ran, and promote the best one if it
    earns it; returns the decision."""
    root, pipeline_id = values["artifact_root"], values["pipeline_id"]
    candidates = run_candidates(root, pipeline_id, values["attempt"])
    decision = registry_store(root).update(
        lambda doc: registry.promote(doc, candidates, threshold, registry.utc_now())
    )
    log.info("promotion of %s: %s", pipeline_id, decision)
    return decision


def resolve_champion(artifact_root: str) -> dict:
    """The champion entry at this moment (batch scoring pins it for the whole run)."""
    return registry.champion(registry_store(artifact_root).read())
