"""Notifications: what each message says, and where the local backend and a notifier send it."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from churn_airflow import factory, notify, settings


@pytest.fixture
def local_root(tmp_path, monkeypatch):
    monkeypatch.setenv("CHURN_BACKEND", "local")
    monkeypatch.setenv("CHURN_ROOT", str(tmp_path))
    monkeypatch.delenv("CHURN_NOTIFIER", raising=False)
    return tmp_path


def failed_context(error: BaseException) -> dict:
    ti = SimpleNamespace(dag_id="customer_churn_batch_scoring", task_id="validate_predictions",
                         run_id="scheduled__2026-11-29", try_number=2,
                         log_url="http://localhost:8080/log")  # fmt: skip
    return {"ti": ti, "exception": error}


def test_a_task_failure_is_its_first_line_with_the_log(local_root):
    error = ValueError("the job counted 3 rows but the tables hold 2\nTraceback ...")
    notify.task_failed(failed_context(error))
    (sent,) = notify.read_local()
    assert (sent["kind"], sent["level"]) == ("failure", "failure")
    assert sent["title"] == "customer_churn_batch_scoring.validate_predictions failed"
    assert sent["body"] == (
        "the job counted 3 rows but the tables hold 2 (try 2; log: http://localhost:8080/log)"
    )
    assert sent["run_id"] == "scheduled__2026-11-29"


SUMMARY = {"status": "alert", "look_at": {"Contract": 0.41, "MonthlyCharges": 0.18},
           "score_psi": 0.3, "model_version": "v1", "report": "/r/drift.html"}  # fmt: skip
PLAN = {"day": "2026-11-29", "pipeline_id": "20261129"}


def test_drift_names_its_features_and_is_silent_below_the_warning_line(local_root):
    notify.drift({**SUMMARY, "status": "ok", "look_at": {}}, PLAN)
    notify.drift({"status": "no baseline", "reason": "old model"}, PLAN)
    assert notify.read_local() == []
    notify.drift(SUMMARY, PLAN)
    (sent,) = notify.read_local()
    assert sent["title"] == "drift alert on 2026-11-29 (20261129)"
    assert sent["body"] == (
        "against model v1: Contract PSI 0.41, MonthlyCharges PSI 0.18; score PSI 0.3; "
        "report: /r/drift.html"
    )
    warning = notify.drift_message({**SUMMARY, "status": "warning"}, PLAN)
    assert warning.level == notify.WARNING


def test_a_promotion_and_a_refusal_carry_their_evidence(local_root):
    notify.promotion({"promoted": True, "version": "v2", "reason": "AUPR +0.04 [0.01, 0.07]",
                      "report": "/r/report.html"})  # fmt: skip
    notify.promotion({"promoted": False, "version": "v3", "reason": "below the threshold"})
    promoted, refused = notify.read_local()
    assert (promoted["title"], promoted["level"]) == ("v2 is the champion", "success")
    assert promoted["body"] == "AUPR +0.04 [0.01, 0.07] (report: /r/report.html)"
    assert (refused["title"], refused["level"]) == ("v3 is not promoted", "info")


def test_a_missed_deadline_names_the_run_and_what_is_missing(local_root):
    # the context's shape as Airflow 3.3.2's scheduler sends it (a DAGRunResponse, abridged)
    context = {"dag_run": {"dag_run_id": "manual__1", "dag_id": "customer_churn_training",
                           "run_type": "manual", "state": "running"},
               "deadline": {"id": "d1", "deadline_time": "2026-11-29T04:00:00Z"}}  # fmt: skip
    notify.deadline_missed(context, "its models are not trained and judged yet")
    (sent,) = notify.read_local()
    assert sent["title"] == "customer_churn_training is late"
    assert sent["body"] == (
        "run manual__1 missed its deadline 2026-11-29T04:00:00Z: its models are not "
        "trained and judged yet"
    )


def test_a_notifier_connection_receives_every_message_and_a_failure_to_send_is_logged(
    local_root, monkeypatch
):
    from airflow.providers.apprise.hooks import apprise as hook_module

    sent = []

    class Hook:
        def __init__(self, apprise_conn_id):
            self.conn = apprise_conn_id

        def notify(self, **message):
            if self.conn == "broken":
                raise ConnectionError("no route to hooks.slack.com")
            sent.append((self.conn, message))

    monkeypatch.setattr(hook_module, "AppriseHook", Hook)
    monkeypatch.setenv("CHURN_NOTIFIER", "team_slack")
    notify.promotion({"promoted": False, "version": "v3", "reason": "below the threshold"})
    message = {"body": "below the threshold (report: none)", "title": "v3 is not promoted",
               "notify_type": "info"}  # fmt: skip
    assert sent == [("team_slack", message)]
    assert notify.read_local() == []  # the notifier replaces the local file
    monkeypatch.setenv("CHURN_NOTIFIER", "broken")
    logged = []
    monkeypatch.setattr(notify.log, "exception", lambda *args: logged.append(args))
    notify.promotion({"promoted": False, "version": "v4", "reason": "below the threshold"})
    assert logged == [("could not send the %s notification %r", "promotion", "v4 is not promoted")]


def test_deadlines_come_from_the_environment(monkeypatch):
    monkeypatch.delenv("CHURN_SCORING_DEADLINE", raising=False)
    assert settings.deadline("scoring") == dt.timedelta(hours=6)
    monkeypatch.setenv("CHURN_TRAINING_DEADLINE", "90s")
    assert settings.deadline("training") == dt.timedelta(seconds=90)
    monkeypatch.setenv("CHURN_TRAINING_DEADLINE", "off")  # for `airflow dags test`
    assert settings.deadline("training") is None
    assert factory.deadline("training", "not yet") is None
    for bad in ("6", "0h", "1.5h", "6d"):
        monkeypatch.setenv("CHURN_TRAINING_DEADLINE", bad)
        with pytest.raises(ValueError, match="use a positive whole number of s, m or h"):
            settings.deadline("training")


def test_the_cloud_poll_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("CHURN_CLOUD_POLL", raising=False)
    assert settings.cloud_poll_seconds() == 60
    monkeypatch.setenv("CHURN_CLOUD_POLL", "2m")
    assert settings.cloud_poll_seconds() == 120
    monkeypatch.setenv("CHURN_CLOUD_POLL", "off")
    with pytest.raises(ValueError, match=r"CHURN_CLOUD_POLL='off': .* like 60s$"):
        settings.cloud_poll_seconds()


def test_the_deadline_alert_of_each_backend(monkeypatch):
    monkeypatch.setenv("CHURN_BACKEND", "local")
    monkeypatch.delenv("CHURN_SCORING_DEADLINE", raising=False)
    local = factory.deadline("scoring", "not yet")
    assert local.callback.path == "churn_airflow.notify.deadline_missed"
    assert local.callback.kwargs == {"what": "not yet"}
    assert local.interval == dt.timedelta(hours=6)
    monkeypatch.setenv("CHURN_BACKEND", "gcp")
    monkeypatch.delenv("CHURN_NOTIFIER", raising=False)
    assert factory.deadline("scoring", "not yet") is None  # nobody would hear it
    monkeypatch.setenv("CHURN_NOTIFIER", "team_slack")
    cloud = factory.deadline("scoring", "not yet")
    assert cloud.callback.path == factory.APPRISE_NOTIFIER  # the triggerer loads provider code
    assert cloud.callback.kwargs["apprise_conn_id"] == "team_slack"
