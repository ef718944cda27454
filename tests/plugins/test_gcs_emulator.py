"""The GCS side of the gcp backend against a real GCS JSON API (``gcp-storage-emulator``).

The real ``google-cloud-storage`` client and the provider's ``GCSHook`` (with anonymous
credentials patched in) talk HTTP to the emulator. One stand-in remains: the emulator ignores
``ifGenerationMatch``, so ``tests.gcs_emulator.generation_preconditions`` answers that one
check as GCS does (412); the two canary tests below show both facts.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import time

import pytest
from google.api_core.exceptions import PreconditionFailed
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from churn_airflow import gcs, promotion, scoring
from churn_core import bigquery_sql, documents, layout, registry, stages
from churn_core.pipeline_params import Environment
from tests import gcs_emulator as emulator

PROJECT = "emulator-project"
DAY = dt.date(2026, 11, 29)
OBJECT = "registry/customer-churn-model.json"


def new_bucket(request) -> storage.Bucket:
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:63]
    return storage.Client(project=PROJECT).create_bucket(name)


@pytest.fixture
def bucket(gcs_emulator, request):
    """A new bucket for each test, on a GCS that honours generation preconditions."""
    with emulator.generation_preconditions():
        yield new_bucket(request)


@pytest.fixture
def gcs_hook(monkeypatch):
    """``GCSHook`` as on Composer, but anonymous: the emulator checks no credentials."""
    from airflow.providers.google.common.hooks.base_google import GoogleBaseHook

    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", "google-cloud-platform://")
    monkeypatch.setattr(
        GoogleBaseHook,
        "get_credentials_and_project_id",
        lambda self: (AnonymousCredentials(), PROJECT),
    )


def put(bucket: storage.Bucket, name: str, doc: dict) -> None:
    bucket.blob(name).upload_from_string(json.dumps(doc), content_type="application/json")


def candidate(pid: str, au_pr: float, scored: str | None = None) -> registry.Candidate:
    """A run's model; it was compared with ``scored`` on its rows (clearly better) or the run
    started without a champion."""
    evidence = None
    if scored:
        interval = {"challenger": au_pr, "champion": au_pr - 0.1, "delta": 0.1, "lower": 0.05,
                    "upper": 0.15}  # fmt: skip
        evidence = {"champion": scored, "comparable": True, "rows": 1409, "replicates": 1000,
                    "confidence": 0.95, "au_pr": interval, "au_roc": interval}  # fmt: skip
    return registry.Candidate(
        pid, stages.TRAINING.folder, "abcde-1", f"gs://m/{pid}", {"au_pr": au_pr}, 42, evidence
    )


def promote_change(pid: str, au_pr: float, scored: str | None = None):
    return lambda doc: registry.promote(doc, [candidate(pid, au_pr, scored)], 0.5, "now")


FIRST = "20261129-training-abcde-1"


# --- canaries -----------------------------------------------------------------------------------


def test_a_stale_generation_gets_412(bucket):
    blob = bucket.blob("canary.json")
    blob.upload_from_string("1", if_generation_match=0)  # 0: only if there is no object yet
    with pytest.raises(PreconditionFailed):
        bucket.blob("canary.json").upload_from_string("2", if_generation_match=0)
    first = bucket.get_blob("canary.json").generation
    bucket.blob("canary.json").upload_from_string("2", if_generation_match=first)
    with pytest.raises(PreconditionFailed):
        bucket.blob("canary.json").upload_from_string("3", if_generation_match=first)
    assert bucket.get_blob("canary.json").download_as_text() == "2"


def test_the_emulator_alone_ignores_if_generation_match(gcs_emulator, request):
    """Why ``generation_preconditions`` exists; when this fails, the emulator has learnt the
    check and the stand-in can go."""
    bucket = new_bucket(request)
    bucket.blob("canary.json").upload_from_string("1", if_generation_match=0)
    bucket.blob("canary.json").upload_from_string("2", if_generation_match=0)  # no 412
    assert bucket.get_blob("canary.json").download_as_text() == "2"


# --- the registry's GcsStore --------------------------------------------------------------------


def test_gcs_store_writes_one_json_object_under_preconditions(bucket):
    store = registry.GcsStore(f"gs://{bucket.name}/{OBJECT}", storage.Client(project=PROJECT))
    assert store.read() == registry.empty()
    assert store.update(promote_change("20261129", 0.7))["promoted"] is True
    blob = bucket.get_blob(OBJECT)
    assert blob.content_type == "application/json"
    assert json.loads(blob.download_as_text())["champion"] == "20261129-training-abcde-1"
    assert store.update(promote_change("20261130", 0.8, FIRST))["promoted"] is True
    assert bucket.get_blob(OBJECT).generation != blob.generation
    assert [v["version"] for v in store.read()["versions"]] == [
        "20261129-training-abcde-1",
        "20261130-training-abcde-1",
    ]


def test_gcs_store_keeps_the_replaced_generations_and_names_one_when_corrupt(bucket):
    store = registry.GcsStore(f"gs://{bucket.name}/{OBJECT}", storage.Client(project=PROJECT))
    generations = []
    for n in range(registry.KEPT_BACKUPS + 2):
        store.update(lambda doc, n=n: ({**doc, "n": n}, None))
        generations.append(bucket.get_blob(OBJECT).generation)
    backups = sorted(b.name for b in bucket.list_blobs(prefix=registry.backups_uri(OBJECT)))
    assert backups == [
        f"{registry.backups_uri(OBJECT)}/{g:020d}.json"
        for g in generations[-registry.KEPT_BACKUPS - 1 : -1]
    ]
    assert json.loads(bucket.get_blob(backups[-1]).download_as_text())["n"] == 10
    bucket.blob(OBJECT).upload_from_string("not json")
    with pytest.raises(registry.CorruptRegistry) as err:
        store.read()
    assert str(err.value) == (
        f"the registry document gs://{bucket.name}/{OBJECT} is not valid JSON (Expecting "
        f"value, line 1); copy its last good version gs://{bucket.name}/{backups[-1]} over it"
    )


def test_gcs_store_retries_a_lost_race_and_keeps_both_updates(bucket):
    store = registry.GcsStore(f"gs://{bucket.name}/{OBJECT}", storage.Client(project=PROJECT))
    store.update(promote_change("20261129", 0.7))
    seen = []

    def change(doc):
        seen.append(doc)
        if len(seen) == 1:  # another run promotes between our read and our write
            other, _ = promote_change("other-run", 0.9, FIRST)(doc)
            put(bucket, OBJECT, other)
        return promote_change("20261130", 0.8, FIRST)(doc)

    decision = store.update(change)
    assert len(seen) == 2  # the first write got 412, the second read saw the other run
    versions = sorted(v["version"] for v in store.read()["versions"])
    assert versions == [
        "20261129-training-abcde-1",
        "20261130-training-abcde-1",
        "other-run-training-abcde-1",
    ]
    # Re-decided on the document the other run left: its champion is not the one this run
    # scored, so compare-and-swap refuses.
    assert decision["promoted"] is False
    assert decision["reason"].startswith(
        f"the champion changed from {FIRST} to other-run-training-abcde-1"
    )
    assert store.read()["champion"] == "other-run-training-abcde-1"


def test_gcs_store_gives_up_after_its_attempts_and_leaves_the_document(bucket):
    store = registry.GcsStore(
        f"gs://{bucket.name}/{OBJECT}", storage.Client(project=PROJECT), attempts=3
    )

    def always_beaten(doc):
        put(bucket, OBJECT, registry.empty())
        return promote_change("20261129", 0.7)(doc)

    with pytest.raises(RuntimeError, match=rf"registry gs://{bucket.name}/{OBJECT} kept changing"):
        store.update(always_beaten)
    assert json.loads(bucket.get_blob(OBJECT).download_as_text()) == registry.empty()


PROMOTER = """
import json, sys, time
from churn_core import registry
uri, pid, au_pr, start = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
time.sleep(max(0.0, start - time.time()))  # start together

def change(doc):
    time.sleep(0.05)  # widen the window between read and write
    c = registry.Candidate(pid, "training", "abcde-1", "gs://m/" + pid, {"au_pr": au_pr})
    return registry.promote(doc, [c], 0.5, "now")

print(json.dumps(registry.GcsStore(uri, attempts=20).update(change)))
"""


def test_concurrent_promotions_from_processes_lose_no_update(bucket, subprocess_env):
    uri = f"gs://{bucket.name}/{OBJECT}"
    pids = [f"run-p{i}" for i in range(4)]
    start = time.time() + 3.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PROMOTER, uri, pid, str(0.6 + i / 100), str(start)],
            env=subprocess_env,  # STORAGE_EMULATOR_HOST included: storage.Client() finds it
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, pid in enumerate(pids)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * len(pids), outputs
    doc = json.loads(bucket.get_blob(OBJECT).download_as_text())
    assert sorted(v["version"] for v in doc["versions"]) == sorted(
        f"{p}-training-abcde-1" for p in pids
    )
    # All four started without a champion: the first to write made one, and compare-and-swap
    # refused the other three, each decided on the document as it then was.
    decisions = [json.loads(out) for out, _ in outputs]
    (winner,) = [d["version"] for d in decisions if d["promoted"]]
    assert doc["champion"] == winner
    assert [v["version"] for v in doc["versions"] if v["status"] == registry.CHAMPION] == [winner]
    refused = [d["reason"] for d in decisions if not d["promoted"]]
    assert len(refused) == 3
    assert all(r.startswith(f"the champion changed from none to {winner} ") for r in refused)


def test_the_rollback_cli_on_a_bucket(bucket, subprocess_env):
    store = registry.GcsStore(f"gs://{bucket.name}/{OBJECT}", storage.Client(project=PROJECT))
    store.update(promote_change("20261129", 0.7))
    store.update(promote_change("20261130", 0.8, FIRST))
    done = subprocess.run(
        [sys.executable, "-m", "churn_tools.registry_cli", "--root", f"gs://{bucket.name}",
         "promote", "20261129-training-abcde-1", "--reason", "audit", "--registry-only"],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["champion"] == "20261129-training-abcde-1"
    assert store.read()["history"][-1]["reason"].endswith(": audit")


# --- promotion and the scoring check through GCSHook --------------------------------------------


def metrics_doc(root: str, stage: stages.Stage, pid: str, au_pr: float) -> dict:
    return {
        "pipeline_id": pid,
        "pipeline_execution_dt": DAY.isoformat(),
        "operation": stage.folder,
        "model_uri": layout.model_uri(root, stage, pid, "abcde-1"),
        "metrics": {"au_pr": au_pr, "au_roc": 0.8},
        "seed": 42,
        "feature_importances": [],
        "comparison": None,
    }


def test_documents_through_gcs_hook(bucket, gcs_hook):
    put(bucket, "a/doc.json", {"a": 1})
    uri = f"gs://{bucket.name}/a/doc.json"
    assert documents.read(uri, gcs.client(uri)) == {"a": 1}
    assert documents.read(f"gs://{bucket.name}/a/missing.json", gcs.client(uri)) is None
    documents.write(uri, {"a": 2}, gcs.client(uri))
    assert json.loads(bucket.get_blob("a/doc.json").download_as_text()) == {"a": 2}


def test_drift_retrain_finds_the_latest_snapshot(bucket, gcs_hook):
    from churn_airflow import drift_watch

    for day in ("2026-11-26", "2026-11-28", "2026-11-29", "2026-12-01"):
        bucket.blob(f"landing/train/dt={day}/part-00000.csv").upload_from_string("x")
        if day != "2026-11-29":  # landed in part: no marker
            bucket.blob(f"landing/train/dt={day}/_SUCCESS").upload_from_string("")
    bucket.blob("landing/score/dt=2026-11-29/_SUCCESS").upload_from_string("")
    root = f"gs://{bucket.name}/landing/train"
    assert drift_watch.latest_snapshot(root, dt.date(2026, 11, 30)) == dt.date(2026, 11, 28)
    assert drift_watch.latest_snapshot(root, dt.date(2026, 11, 25)) is None


def test_promotion_reads_a_runs_metrics_and_updates_the_registry(bucket, gcs_hook):
    root = f"gs://{bucket.name}"
    for stage, au_pr in ((stages.TRAINING, 0.7), (stages.TUNING, 0.75)):
        name = layout.metrics_file(root, stage, "20261129", "abcde-1")
        put(bucket, name.removeprefix(f"{root}/"), metrics_doc(root, stage, "20261129", au_pr))
    values = {"artifact_root": root, "pipeline_id": "20261129", "attempt": "abcde-1"}
    decision = promotion.promote_run(values, 0.5)
    assert decision["champion"] == "20261129-hyperparameter-tuning-abcde-1"
    champion = promotion.resolve_champion(root)
    assert champion["model_uri"] == layout.model_uri(root, stages.TUNING, "20261129", "abcde-1")
    stored = json.loads(bucket.get_blob(OBJECT).download_as_text())
    assert stored["champion"] == "20261129-hyperparameter-tuning-abcde-1"
    # What the next run's plan passes to its jobs.
    assert registry.champion_to_score(root, gcs.client(root)) == {
        "version": "20261129-hyperparameter-tuning-abcde-1",
        "model_uri": champion["model_uri"],
        "seed": 42,
    }


class CountingBigQuery:
    """Answers the COUNT of each table with ``rows``; records the exact queries."""

    def __init__(self, rows: dict[str, int]):
        self.rows, self.queries = rows, []

    def query(self, sql, job_config):
        params = [(p.name, p.type_, p.value) for p in job_config.query_parameters]
        self.queries.append((sql, params))
        table = re.search(r"customer_churn_ds\.(\w+)`", sql)[1]
        return type("Job", (), {"result": lambda _: iter([(self.rows[table],)])})()


def test_validate_predictions_reads_the_stats_from_gcs_and_counts_in_bigquery(
    bucket, gcs_hook, monkeypatch
):
    from airflow.providers.google.cloud.hooks.bigquery import BigQueryHook

    env = Environment.gcp(PROJECT, "us-central1", "data-b", bucket.name, "code-b")
    stats = {
        "pipeline_id": "20261129",
        "pipeline_execution_dt": "2026-11-29",
        "model_version": "20261128-training-abcde-1",
        "rows_in": 411,
        "repeated_headers": 0,
        "customers_in": 411,
        "scored": 400,
        "rejected": 11,
    }
    name = layout.scoring_stats_file(env.artifact_root, "20261129").removeprefix(
        f"gs://{bucket.name}/"
    )
    put(bucket, name, stats)
    bigquery = CountingBigQuery({"batch_predictions": 400, "batch_rejects": 11})
    monkeypatch.setattr(BigQueryHook, "get_client", lambda self, project_id=None: bigquery)

    counts = scoring.validate(env, "20261129", DAY, "20261128-training-abcde-1").counts()
    assert counts == {"rows_in": 411, "customers_in": 411, "scored": 400, "rejected": 11}
    params = [("pipeline_execution_dt", "DATE", DAY), ("pipeline_id", "STRING", "20261129")]
    assert bigquery.queries == [
        (bigquery_sql.count_rows_sql(bigquery_sql.BigQueryTable(PROJECT, layout.DATASET, t),
                                     ["pipeline_id"]), params)
        for t in ("batch_predictions", "batch_rejects")
    ]  # fmt: skip

    bigquery.rows["batch_rejects"] = 10  # a partition that does not hold what the job wrote
    with pytest.raises(ValueError, match="but the tables hold"):
        scoring.validate(env, "20261129", DAY, "20261128-training-abcde-1")


# --- the scoring run's commit record (churn_ml.commit_record) ------------------------------------


def test_the_commit_record_on_gcs_refuses_a_superseded_attempt_by_generation(bucket):
    from churn_ml import commit_record

    uri = f"gs://{bucket.name}/{layout.commit_record('', stages.SCORING, '20261129').lstrip('/')}"
    first = commit_record.take(uri, "abcde-1")
    later = commit_record.take(uri, "abcde-2")
    assert later.generation != first.generation
    with pytest.raises(commit_record.Superseded) as err, first.committing():
        pytest.fail("a superseded attempt entered its commit")
    assert str(err.value).startswith(f"attempt abcde-1 no longer holds {uri}: attempt abcde-2 ")
    with later.committing():
        pass
    name = uri.removeprefix(f"gs://{bucket.name}/")
    record = json.loads(bucket.get_blob(name).download_as_text())
    assert (record["attempt"], record["state"]) == ("abcde-2", "committed")


# --- the day's completion sensor ------------------------------------------------------------------


def test_a_deferred_wait_for_a_day_that_never_completes_says_what_landed(bucket, gcs_hook):
    """The deferral's timeout fails in the worker (``__fail__``) with the day's folder listed."""
    from airflow.sdk.bases.operator import TriggerFailureReason
    from airflow.sdk.exceptions import AirflowSensorTimeout

    from churn_airflow.gcs_sensors import DayCompleteSensor

    marker = layout.input_marker(layout.TRAIN_INPUT, DAY)
    sensor = DayCompleteSensor(
        task_id="wait", bucket=bucket.name, object=marker, deferrable=True, timeout=3600
    )
    timeout = {"error": TriggerFailureReason.TRIGGER_TIMEOUT}
    folder = f"gs://{bucket.name}/landing/train/dt=2026-11-29"
    with pytest.raises(AirflowSensorTimeout, match=f"^nothing has landed in {folder}; waited"):
        sensor.resume_execution("__fail__", timeout, {})
    bucket.blob("landing/train/dt=2026-11-29/part-00000.csv").upload_from_string("a,b\n")
    with pytest.raises(AirflowSensorTimeout) as err:
        sensor.resume_execution("__fail__", timeout, {})
    assert str(err.value) == (
        f"{folder} holds part-00000.csv but no _SUCCESS: its producer has not said the day is "
        "complete; waited 1:00:00"
    )
    bucket.blob(marker).upload_from_string("")
    assert sensor.resume_execution("execute_complete", {"event": {"status": "success"}}, {})
