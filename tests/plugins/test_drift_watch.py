"""The scoring DAG's drift check and alert, and the training DAG's one drift retrain a day."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
from airflow.sdk.exceptions import AirflowSkipException

from churn_airflow import drift_watch
from churn_airflow.run_ids import identify
from churn_core import layout, registry
from churn_core.pipeline_params import Environment
from churn_core.run_records import DriftReport

DAY = "2026-11-29"


HTML = "/r/drift.html"


def document(*features: tuple[str, float, str], status: str = "ok") -> dict:
    """A drift.json as the scoring job writes it."""
    return {
        "pipeline_id": "20261129",
        "pipeline_execution_dt": DAY,
        "model_version": "20261128-training-k7f2q-1",
        "baseline": True,
        "reason": None,
        "thresholds": {"warning": 0.1, "alert": 0.25},
        "rows": 400,
        "features": [
            {"feature": f, "psi": p, "unseen_share": 0.0, "status": s} for f, p, s in features
        ],
        "score": {"psi": 0.02, "unseen_share": 0.0, "status": "ok"},
        "status": status,
    }


def report(*features: tuple[str, float, str], status: str = "ok") -> DriftReport:
    return DriftReport.from_json(document(*features, status=status))


QUIET = report(("tenure", 0.03, "ok"), ("contract", 0.01, "ok"))
WARNED = report(("monthly_charges", 0.16, "warning"), ("tenure", 0.03, "ok"), status="warning")
ALERTED = report(
    ("contract", 0.61, "alert"),
    ("monthly_charges", 0.19, "warning"),
    ("tenure", 0.03, "ok"),
    status="alert",
)
NO_BASELINE = dataclasses.replace(
    QUIET, baseline=False, reason="the champion v1 has no training profile"
)


def test_below_the_warning_line_the_check_is_quiet():
    assert drift_watch.summary(QUIET, HTML)["look_at"] == {}
    assert drift_watch.message(QUIET).endswith("every feature is below the warning line")
    assert drift_watch.alert_extra(QUIET, HTML, DAY) is None


def test_a_warning_names_the_features_to_look_at_and_raises_no_alert():
    assert drift_watch.summary(WARNED, HTML)["look_at"] == {"monthly_charges": 0.16}
    assert "look at monthly_charges 0.160 (warning)" in drift_watch.message(WARNED)
    assert drift_watch.alert_extra(WARNED, HTML, DAY) is None


def test_an_alert_lists_only_the_features_past_the_alert_line():
    extra = drift_watch.alert_extra(ALERTED, HTML, DAY)
    assert extra["features"] == {"contract": 0.61}
    assert (extra["day"], extra["report"]) == (DAY, "/r/drift.html")
    assert drift_watch.summary(ALERTED, HTML)["top_psi"] == {
        "contract": 0.61,
        "monthly_charges": 0.19,
        "tenure": 0.03,
    }


def test_without_a_baseline_the_check_says_so_plainly():
    assert drift_watch.summary(NO_BASELINE, HTML) == {
        "status": "no baseline",
        "reason": "the champion v1 has no training profile",
    }
    assert drift_watch.message(NO_BASELINE) == (
        "drift not measured: the champion v1 has no training profile"
    )
    assert (
        drift_watch.alert_extra(dataclasses.replace(NO_BASELINE, status="alert"), HTML, DAY) is None
    )


def test_the_check_reads_the_report_beside_the_run_stats(tmp_path):
    folder = layout.drift_folder(str(tmp_path), "20261129")
    with pytest.raises(FileNotFoundError, match="scoring run 20261129 wrote no drift report"):
        drift_watch.check(str(tmp_path), {"pipeline_id": "20261129", "day": DAY})
    written = document(("contract", 0.61, "alert"), status="alert")
    assert DriftReport.from_json(written).to_json() == written  # the round trip keeps it all
    (tmp_path / folder).mkdir(parents=True)
    (tmp_path / folder / "drift.json").write_text(json.dumps(written))
    checked = drift_watch.check(str(tmp_path), {"pipeline_id": "20261129", "day": DAY})
    assert checked["status"] == "alert"
    assert checked["alert"]["features"] == {"contract": 0.61}
    (tmp_path / folder / "drift.json").write_text(json.dumps({"status": "alert"}))
    with pytest.raises(ValueError, match=r"drift\.json is not a drift report: it has no"):
        drift_watch.check(str(tmp_path), {"pipeline_id": "20261129", "day": DAY})
    assert checked["alert"]["report"] == f"{folder}/drift.html"


def test_the_latest_snapshot_is_the_newest_landed_day_up_to_the_run(tmp_path):
    root = tmp_path / "landing" / "train"
    days = (("2026-11-26", True), ("2026-11-28", True), ("2026-11-29", False), ("2026-12-01", True))
    for day, complete in days:
        (root / f"dt={day}").mkdir(parents=True)
        (root / f"dt={day}" / "part-0.csv").write_text("x")
        if complete:
            (root / f"dt={day}" / "_SUCCESS").touch()
    (root / "notes").mkdir()
    latest = drift_watch.latest_snapshot
    assert latest(str(root), dt.date(2026, 11, 30)) == dt.date(2026, 11, 28)  # 29 is partial
    assert latest(str(root), dt.date(2026, 11, 25)) is None
    assert latest(str(tmp_path / "nowhere"), dt.date(2026, 11, 30)) is None


def drift_run(key: str):
    return identify(key, "asset_triggered", None, dt.datetime(2026, 11, 30, 0, 7, tzinfo=dt.UTC),
                    asset_tag=drift_watch.DRIFT_TAG)  # fmt: skip


def test_one_drift_retrain_a_day_on_the_latest_snapshot(tmp_path):
    env = Environment.local(tmp_path)
    (tmp_path / "landing" / "train" / "dt=2026-11-28").mkdir(parents=True)
    (tmp_path / "landing" / "train" / "dt=2026-11-28" / "train.csv").write_text("x")
    (tmp_path / "landing" / "train" / "dt=2026-11-28" / "_SUCCESS").touch()
    first = drift_watch.drift_retrain(env, drift_run("asset_triggered__a"), {})
    assert (first.pipeline_id, first.day) == ("20261130-drift", dt.date(2026, 11, 28))
    # A retry or a clear of the same run keeps its claim; another run that day skips.
    assert drift_watch.drift_retrain(env, drift_run("asset_triggered__a"), {}) == first
    with pytest.raises(AirflowSkipException, match=r"already belongs to run .*: at most one a day"):
        drift_watch.drift_retrain(env, drift_run("asset_triggered__b"), {})
    doc = registry.store(env.artifact_root).read()
    assert doc[drift_watch.RETRAINS_KEY] == {"20261130-drift": first.run_key}


def test_a_drift_retrain_without_any_snapshot_fails_in_one_sentence(tmp_path):
    with pytest.raises(FileNotFoundError, match="no labelled training snapshot up to 2026-11-30"):
        drift_watch.drift_retrain(Environment.local(tmp_path), drift_run("asset_triggered__a"), {})
