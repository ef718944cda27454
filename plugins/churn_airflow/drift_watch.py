"""What the DAGs do with a scoring run's drift report: summarise it, raise the alert, and let
at most one drift-triggered retrain run per day (pure, apart from reading and the registry).

The scoring job writes the report (``churn_ml.drift``); its statuses use the thresholds the
scoring DAG passed it, so nothing here judges a PSI again.
"""

from __future__ import annotations

import datetime as dt
import logging
import os

from churn_airflow import gcs
from churn_core import documents, layout, registry
from churn_core.psi import ALERT, WARNING
from churn_core.run_records import DriftReport

log = logging.getLogger(__name__)

DRIFT_TAG = "drift"  # a drift-triggered training run's pipeline_id is YYYYMMDD-drift
RETRAINS_KEY = "drift_retrains"  # in the registry document: pipeline_id -> the run holding it


def read_report(artifact_root: str, pipeline_id: str) -> tuple[DriftReport, str]:
    """The scoring run's drift.json and its HTML report's address; a run that scored always
    writes both."""
    folder = layout.drift_folder(artifact_root, pipeline_id)
    where = f"{folder}/{layout.DRIFT_JSON}"
    doc = documents.read(where, gcs.client(folder))
    if doc is None:
        raise FileNotFoundError(f"scoring run {pipeline_id} wrote no drift report in {folder}")
    return DriftReport.from_json(doc, where), f"{folder}/{layout.DRIFT_HTML}"


def check(artifact_root: str, plan: dict) -> dict:
    """The scoring DAG's drift check of the run ``plan`` names: its summary, logged."""
    report, html = read_report(artifact_root, plan["pipeline_id"])
    log.info("%s", message(report))
    return {**summary(report, html), "alert": alert_extra(report, html, plan["day"])}


def _psis(features) -> dict[str, float]:
    return {f.feature: round(f.psi, 4) for f in features}


def summary(report: DriftReport, html: str, top: int = 5) -> dict:
    """The check's return value (the UI's XCom tab): the status, where a person should look,
    the largest PSIs and the report's address."""
    if not report.baseline:
        return {"status": "no baseline", "reason": report.reason}
    return {
        "status": report.status,
        "thresholds": report.thresholds,
        "look_at": _psis(report.at(WARNING, ALERT)),
        "top_psi": _psis(report.features[:top]),
        "score_psi": round(report.score.psi, 4),
        "model_version": report.model_version,
        "report": html,
    }


def message(report: DriftReport) -> str:
    """One line for the task log."""
    if not report.baseline:
        return f"drift not measured: {report.reason}"
    thresholds = report.thresholds
    flagged = report.at(WARNING, ALERT)
    head = (
        f"drift {report.status} against model {report.model_version} (warning at PSI "
        f"{thresholds['warning']}, alert at {thresholds['alert']}; score PSI "
        f"{report.score.psi:.3f})"
    )
    if not flagged:
        return head + ": every feature is below the warning line"
    listed = ", ".join(f"{f.feature} {f.psi:.3f} ({f.status})" for f in flagged)
    return f"{head}: look at {listed}"


def alert_extra(report: DriftReport, html: str, day: str) -> dict | None:
    """The drift Asset event's extra at an alert (the features past the alert line and their
    PSIs), else None: no event."""
    if not report.baseline or report.status != ALERT:
        return None
    return {
        "pipeline_id": report.pipeline_id,
        "day": day,
        "model_version": report.model_version,
        "features": _psis(report.at(ALERT)),
        "score_psi": round(report.score.psi, 4),
        "report": html,
    }


def claim_retrain(doc: dict, pipeline_id: str, run_key: str) -> tuple[dict, str | None]:
    """A registry ``update`` step: the drift retrain ``pipeline_id`` (one a day) goes to this
    run unless another run has it. Returns (document, the other run that holds it, or None)."""
    retrains = dict(doc.get(RETRAINS_KEY, {}))
    holder = retrains.setdefault(pipeline_id, run_key)
    if holder != run_key:
        return doc, holder
    return {**doc, RETRAINS_KEY: retrains}, None


def latest_snapshot(data_root: str, until: dt.date) -> dt.date | None:
    """The newest day up to ``until`` whose training input is complete (its completion marker
    is there) under ``data_root`` (``landing/train`` in the data bucket or the local root):
    scoring data has no labels, so a retrain on drift trains on the latest labelled snapshot."""
    marker = f"/{layout.COMPLETE_MARKER}"
    if data_root.startswith("gs://"):
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        bucket, prefix = layout.gcs_object(data_root)
        names = GCSHook().list(bucket, prefix=prefix.rstrip("/") + "/dt=")
        folders = {
            name.removeprefix(prefix.rstrip("/") + "/").removesuffix(marker)
            for name in names
            if name.endswith(marker)
        }
    else:
        root = data_root.removeprefix("file://")
        folders = {
            entry.name for entry in os.scandir(root) if os.path.isfile(entry.path + marker)
        } if os.path.isdir(root) else set()  # fmt: skip
    days = [d for d in map(layout.partition_day, folders) if d is not None and d <= until]
    return max(days, default=None)


def drift_retrain(env, run, params: dict):
    """The identity of a drift-triggered training run, or a skip.

    The run trains on the latest labelled snapshot up to its day (unless the ``day`` param
    names one) and is the day's only drift retrain: a second drift alert that day, e.g. from
    the re-score a promotion starts, skips at once. That breaks the loop drift -> retrain ->
    promote -> re-score -> drift.
    """
    from dataclasses import replace

    from airflow.sdk.exceptions import AirflowSkipException

    holder = registry.store(env.artifact_root, gcs.client(env.artifact_root)).update(
        lambda doc: claim_retrain(doc, run.pipeline_id, run.run_key)
    )
    if holder is not None:
        raise AirflowSkipException(
            f"drift retrain {run.pipeline_id} already belongs to run {holder}: at most one a day"
        )
    if params.get("day"):
        return run
    snapshot = latest_snapshot(env.training_data_root, run.day)
    if snapshot is None:
        raise FileNotFoundError(
            f"no labelled training snapshot up to {run.day} under {env.training_data_root}"
        )
    log.info("drift retrain %s trains on the snapshot of %s", run.pipeline_id, snapshot)
    return replace(run, day=snapshot)
