"""Both DAGs on a running Airflow with job scheduling on, as a data engineer drives them: the
CLI, the UI in a real browser, the REST API, assets and backfills. The Airflow is the compose
stack's topology (``compose_stack``): PostgreSQL and the LocalExecutor, a process per service.

One server serves the whole module, and its tests run in order, each building on the last:

1. ``dags trigger --logical-date`` of training on a day whose labels are noise, then unpause:
   the first (weak) champion. The run holds today's logical date, so unpausing adds no run.
2. unpause scoring: the scheduled run of today scores with that champion.
3. ``dags trigger`` without a logical date, on today's real data, its pipeline task cleared
   through the REST API while it runs: the kill cancels that job and the next try is new
   work; a better champion, whose asset event starts a re-score of today that replaces the
   day's predictions.
4. the UI: no import errors, the graphs, and the trigger form with params; that run retrains
   the champion's day, is not promoted, and leaves the champion's files byte for byte.
5. ``backfill create`` of scoring over two days: a partition each, no drift alert.
6. ``churn registry promote`` rolls back to the first champion: the rollback DAG moves it, and
   its asset event re-scores the latest scored day (a backfilled one) with it. The REST API
   then clears today's re-score's submit task: one new batch, which reads the registry again
   and replaces the day's rows with the restored champion's.
7. a manual scoring run of a shifted day: the drift alert's asset event starts one retrain
   on the latest snapshot, and a second alert that day starts a run that skips at once.
8. the notifications all of that sent: each promotion and refusal, the drift alert, and the
   runs that missed their deadline: training runs (20 s here after their logical date) and
   the scoring backfill of past days.
9. a rollback to an unknown version: the task fails at once and notifies once.
10. the lineage of the first champion: its raw training day, through its training_data
   partition, to today's predictions scored with it, each job under its Airflow task run.

Screenshots go to ``test-output/ui/``.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote

import pyarrow.parquet as pq
import pytest

from churn_core import layout, stages
from churn_tools import lineage, lineage_graph
from tests.dags.compose_stack import airflow, free_port, stack
from tests.dags.conftest import REPO

CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")
# Without the networking flags Chromium keeps calling Google's hosts, which this machine refuses.
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def today_for_the_whole_module(margin: dt.timedelta = dt.timedelta(minutes=40)) -> dt.date:
    """Today (UTC) for every test here, or tomorrow within ``margin`` of midnight: the module
    takes about 10 minutes and no run may cross midnight (``server`` waits for that day).
    Computed at import, which must not wait: collecting the fast suite imports this module."""
    return (dt.datetime.now(dt.UTC) + margin).date()


def wait_for_the_day(day: dt.date) -> None:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    time.sleep(max(0.0, (start - dt.datetime.now(dt.UTC)).total_seconds() + 1))


PORT = free_port()  # the API server's: another stack on this machine may hold any fixed one
BASE = f"http://localhost:{PORT}"
SHOTS = REPO / "test-output" / "ui"
TRAINING, SCORING = "customer_churn_training", "customer_churn_batch_scoring"
ROLLBACK = "customer_churn_rollback"
TRAIN_ROWS, SCORE_ROWS, BACKFILL_ROWS = 2000, 400, 200
TODAY = today_for_the_whole_module()
NOISE_DAY = TODAY - dt.timedelta(days=1)  # training labels shuffled: a model learns nothing
BACKFILL_DAYS = [TODAY - dt.timedelta(days=d) for d in (4, 3)]
DRIFT_DAY = TODAY - dt.timedelta(days=2)  # the contract mix and the charges moved
DRIFT_SHIFT = {"Contract": 0.3, "MonthlyCharges": 30.0}
RUN_TIMEOUT = 900

pytestmark = pytest.mark.slow


def noise_labels(path: Path) -> None:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    labels = [r["Churn"] for r in rows]
    random.Random(3).shuffle(labels)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**r, "Churn": label} for r, label in zip(rows, labels, strict=True))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A fresh Airflow in the compose topology (PostgreSQL, the LocalExecutor, a process per
    service) with its own churn root and the inputs landed."""
    from churn_ml import sample_data

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    wait_for_the_day(TODAY)
    home, root = tmp_path_factory.mktemp("airflow-home"), tmp_path_factory.mktemp("churn-root")
    train, score = root / "landing" / "train", root / "landing" / "score"
    sample_data.write_daily_partitions(train, [TODAY], TRAIN_ROWS, seed=5)
    (noisy,) = sample_data.write_daily_partitions(train, [NOISE_DAY], TRAIN_ROWS, seed=5)
    noise_labels(Path(noisy))
    sample_data.write_daily_partitions(score, [TODAY], SCORE_ROWS, seed=6, with_label=False)
    sample_data.write_daily_partitions(
        score, BACKFILL_DAYS, BACKFILL_ROWS, seed=11, with_label=False
    )
    sample_data.write_daily_partitions(
        score, [DRIFT_DAY], SCORE_ROWS, seed=12, with_label=False, shift=DRIFT_SHIFT
    )
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    # a training run here is late 20 s after its logical date: each one notifies
    settings = {"CHURN_ROOT": str(root), "CHURN_BACKEND": "local", "CHURN_TRAINING_DEADLINE": "20s"}
    with stack(home, PORT, settings, SHOTS) as services:
        password_file = services["api_home"] / "simple_auth_manager_passwords.json.generated"
        password = json.loads(password_file.read_text())["admin"]
        yield {"root": root, "env": services["env"], "password": password}


@pytest.fixture(scope="module")
def api(server):
    """The REST API client, with a token from the simple auth manager."""
    import airflow_client.client as client
    import requests

    token = requests.post(
        f"{BASE}/auth/token",
        json={"username": "admin", "password": server["password"]},
        timeout=30,
    )
    token.raise_for_status()
    config = client.Configuration(host=BASE, access_token=token.json()["access_token"])
    with client.ApiClient(config) as api_client:
        wait_until_parsed(api_client)
        yield api_client


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(60_000)
        yield page
        browser.close()


# --- reading the server and the churn root ------------------------------------------------------


def wait_until_parsed(api) -> None:
    import airflow_client.client as client

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if client.DAGApi(api).get_dags().total_entries == 3:
            return
        time.sleep(3)
    raise AssertionError("the DAG processor did not parse the three DAGs in 3 minutes")


def runs(api, dag_id: str, run_type: str | None = None) -> list:
    import airflow_client.client as client

    found = client.DagRunApi(api).get_dag_runs(
        dag_id, run_type=[run_type] if run_type else None, order_by=["run_after"]
    )
    return found.dag_runs


def wait_for_run(api, dag_id: str, run_id: str, expected: str = "success") -> str:
    """Polls a run until it ends; fails with every task's state unless it ended as expected."""
    import airflow_client.client as client

    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        state = client.DagRunApi(api).get_dag_run(dag_id, run_id).state
        if state in ("success", "failed"):
            break
        time.sleep(2)
    tasks = client.TaskInstanceApi(api).get_task_instances(dag_id, run_id).task_instances
    assert state == expected, (run_id, state, {t.task_id: t.state for t in tasks})
    return run_id


def wait_for_new_run(api, dag_id: str, run_type: str, known: set[str]) -> str:
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        new = [r.dag_run_id for r in runs(api, dag_id, run_type) if r.dag_run_id not in known]
        if new:
            return wait_for_run(api, dag_id, new[0])
        time.sleep(2)
    raise AssertionError(f"no new {run_type} run of {dag_id} in {RUN_TIMEOUT} s")


def plan_of(api, dag_id: str, run_id: str, task_id: str) -> dict:
    import airflow_client.client as client

    entry = client.XComApi(api).get_xcom_entry(dag_id, task_id, run_id, "return_value")
    return entry.actual_instance.value


def task_states(api, dag_id: str, run_id: str) -> dict[str, str]:
    import airflow_client.client as client

    tasks = client.TaskInstanceApi(api).get_task_instances(dag_id, run_id).task_instances
    return {t.task_id: t.state for t in tasks}


def trigger(server, *args: str) -> str:
    """``airflow dags trigger`` as the README gives it; returns the new run's id."""
    out = airflow("dags", "trigger", *args, "--output", "json", env=server["env"])
    (line,) = [line for line in out.splitlines() if line.startswith('[{"')]
    (run,) = json.loads(line)
    return run["dag_run_id"]


def registry(server) -> dict:
    return json.loads((server["root"] / "registry" / "customer-churn-model.json").read_text())


def partition(server, table: str, pipeline_id: str) -> Path:
    return server["root"] / "warehouse" / "customer_churn_ds" / table / f"pipeline_id={pipeline_id}"


def rows(server, table: str, pipeline_id: str) -> list[dict]:
    folder = partition(server, table, pipeline_id)
    return [r for f in sorted(folder.glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def scored_rows(server, pipeline_id: str) -> tuple[list[dict], int]:
    return rows(server, "batch_predictions", pipeline_id), len(
        rows(server, "batch_rejects", pipeline_id)
    )


def file_hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def batch_ids(server) -> set[str]:
    return {p.name for p in (server["root"] / "batches").iterdir()}


# --- 1-3: the CLI, scheduled runs and the asset ------------------------------------------------

STATE: dict = {}  # what each step leaves for the next


def test_trigger_with_a_logical_date_makes_the_first_champion(server, api):
    run_id = trigger(
        server,
        TRAINING,
        "--logical-date",
        f"{TODAY.isoformat()}T00:00:00+00:00",
        "--conf",
        json.dumps({"day": NOISE_DAY.isoformat(), "tuning": False, "aupr_threshold": 0.2}),
    )
    airflow("dags", "unpause", TRAINING, env=server["env"])
    wait_for_run(api, TRAINING, run_id)
    plan = plan_of(api, TRAINING, run_id, "plan_run")
    assert plan["pipeline_id"] == f"{NOISE_DAY:%Y%m%d}-manual-000000"
    assert plan["day"] == NOISE_DAY.isoformat()
    doc = registry(server)
    assert doc["champion"].startswith(f"{plan['pipeline_id']}-training-{plan['run_key']}-")
    assert doc["champion"].endswith("-1")  # the first try
    # The run holds today's logical date: unpausing added no scheduled run for today.
    assert runs(api, TRAINING, "scheduled") == []
    STATE["weak"] = doc["champion"]


def test_the_scheduled_scoring_run_scores_today_with_the_champion(server, api):
    airflow("dags", "unpause", SCORING, env=server["env"])
    run_id = wait_for_new_run(api, SCORING, "scheduled", set())
    assert plan_of(api, SCORING, run_id, "plan_scoring")["pipeline_id"] == f"{TODAY:%Y%m%d}"
    scored, rejected = scored_rows(server, f"{TODAY:%Y%m%d}")
    assert len(scored) + rejected == SCORE_ROWS
    assert {r["model_version"] for r in scored} == {STATE["weak"]}
    STATE["scheduled_files"] = file_hashes(
        partition(server, "batch_predictions", f"{TODAY:%Y%m%d}")
    )


def clear(api, dag_id: str, run_id: str, task_id: str) -> None:
    """The REST API's clear of one task and its downstream tasks, as the UI sends it."""
    import airflow_client.client as client
    from airflow_client.client.models.clear_task_instances_body import ClearTaskInstancesBody
    from airflow_client.client.models.clear_task_instances_body_task_ids_inner import (
        ClearTaskInstancesBodyTaskIdsInner as TaskId,
    )

    body = ClearTaskInstancesBody(
        dag_run_id=run_id,
        task_ids=[TaskId(task_id)],
        include_downstream=True,
        only_failed=False,
        dry_run=False,
    )
    client.TaskInstanceApi(api).post_clear_task_instances(dag_id, body)


def running_pipeline_job(server, api, run_id: str) -> Path:
    """The local pipeline job of the run's first try, once it and its task are running."""
    from churn_airflow import local_jobs

    deadline = time.monotonic() + RUN_TIMEOUT
    while task_states(api, TRAINING, run_id).get("plan_run") != "success":
        assert time.monotonic() < deadline
        time.sleep(2)
    plan = plan_of(api, TRAINING, run_id, "plan_run")
    folder = (
        server["root"]
        / "pipeline-jobs"
        / f"churn-training-{plan['pipeline_id']}-{plan['run_key']}-1"
    )
    while not (
        task_states(api, TRAINING, run_id).get("run_training_pipeline") == "running"
        and folder.exists()
        and local_jobs.state(folder)["state"] == local_jobs.RUNNING
    ):
        assert time.monotonic() < deadline, task_states(api, TRAINING, run_id)
        time.sleep(2)
    return folder


def test_trigger_without_a_logical_date_promotes_and_the_asset_re_scores_today(server, api):
    from churn_airflow import local_jobs

    known = {r.dag_run_id for r in runs(api, SCORING)}
    run_id = trigger(server, TRAINING, "--conf", json.dumps({"tuning": False}))
    first = running_pipeline_job(server, api, run_id)
    clear(api, TRAINING, run_id, "run_training_pipeline")  # while it runs
    wait_for_run(api, TRAINING, run_id)
    # The kill cancelled the first try's job; the next try was new work, not a re-attach.
    assert local_jobs.state(first) == {"state": local_jobs.FAILED, "message": "cancelled"}
    jobs = sorted(p.name for p in first.parent.iterdir() if p.name.startswith(first.name[:-2]))
    assert jobs == [first.name, first.name[:-1] + "2"]
    assert local_jobs.state(first.parent / jobs[1])["state"] == local_jobs.SUCCEEDED
    plan = plan_of(api, TRAINING, run_id, "plan_run")
    assert plan["day"] == TODAY.isoformat()
    assert plan["pipeline_id"].startswith(f"{TODAY:%Y%m%d}-manual-")
    doc = registry(server)
    better = doc["champion"]
    assert better != STATE["weak"] and better.startswith(plan["pipeline_id"])
    assert better.endswith(f"-{plan['run_key']}-2")  # the new try's model
    assert doc["history"][-1]["reason"].endswith(": promoted")

    rescore = wait_for_new_run(api, SCORING, "asset_triggered", known)
    assert plan_of(api, SCORING, rescore, "plan_scoring")["pipeline_id"] == f"{TODAY:%Y%m%d}"
    scored, rejected = scored_rows(server, f"{TODAY:%Y%m%d}")
    assert len(scored) + rejected == SCORE_ROWS  # replaced, not added to
    assert {r["model_version"] for r in scored} == {better}
    files = file_hashes(partition(server, "batch_predictions", f"{TODAY:%Y%m%d}"))
    assert files != STATE["scheduled_files"]
    STATE.update(champion=better, rescore=rescore, rescore_files=files)


# --- 4: the UI --------------------------------------------------------------------------------


def shoot(page, name: str) -> None:
    page.screenshot(path=SHOTS / f"{name}.png", full_page=True)


def log_in(page, password: str) -> None:
    page.goto(f"{BASE}/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{BASE}/")


def follow_run(page, api, dag_id: str, run_id: str, name: str) -> str:
    """The state badge by the run's title on its page, once the run ended. (Reloading the
    page while it runs cost the suite a minute of a core, and showed nothing more.)"""
    from playwright.sync_api import expect

    wait_for_run(api, dag_id, run_id)
    page.goto(f"{BASE}/dags/{dag_id}/runs/{run_id}")
    title = page.get_by_role("heading", name=run_id, exact=True)
    badge = title.locator("xpath=..").get_by_test_id("state-badge")
    # until the UI's messages load it shows keys such as states.success
    expect(badge).not_to_have_text(re.compile(r"^\s*states\."), timeout=60_000)
    shoot(page, name)
    return badge.inner_text().strip()


def test_ui_trigger_with_params_retrains_the_champions_day_and_leaves_its_files(server, page, api):
    import airflow_client.client as client

    champion = registry(server)["champion"]
    champion_files = file_hashes(Path(champion_entry(server)["model_uri"]))

    log_in(page, server["password"])
    page.goto(f"{BASE}/dags")
    for dag_id in (TRAINING, SCORING):
        page.get_by_role("link", name=dag_id, exact=True).wait_for()
    shoot(page, "01-dags")
    page.goto(f"{BASE}/")
    # The translated heading: until the UI's messages load it shows keys such as health.health,
    # and the import-error check below would pass on untranslated text.
    page.get_by_role("heading", name="Health", exact=True).wait_for()
    assert page.get_by_text("Dag Import Errors").count() == 0  # the home page's error button
    shoot(page, "02-home")
    assert client.ImportErrorApi(api).get_import_errors().total_entries == 0

    tasks = {
        TRAINING: ["plan_run", "wait_for_training_data", "run_training_pipeline",
                   "promote_champion"],
        SCORING: ["plan_scoring", "wait_for_scoring_input", "submit_scoring", "wait_for_scoring",
                  "validate_predictions"],
    }  # fmt: skip
    for number, (dag_id, task_ids) in enumerate(tasks.items(), start=3):
        page.goto(f"{BASE}/dags/{dag_id}")
        page.get_by_role("button", name="Show Graph").click()
        graph = page.locator(".react-flow")
        for task_id in task_ids:
            graph.get_by_text(task_id, exact=True).wait_for()
        shoot(page, f"0{number}-graph-{dag_id}")

    page.goto(f"{BASE}/dags/{TRAINING}")
    page.get_by_role("button", name="Trigger Dag").click()
    form = page.get_by_role("dialog")
    form.locator("input[name=element_aupr_threshold]").fill("0.3")
    tuning = form.locator("input[name=element_tuning]")
    assert tuning.is_checked()  # the default
    form.locator('[id="switch:element_tuning:control"]').click()
    assert not tuning.is_checked()
    shoot(page, "05-trigger-form")
    form.get_by_role("button", name="Trigger", exact=True).click()
    page.wait_for_url(f"{BASE}/dags/{TRAINING}/runs/manual__*")
    run_id = unquote(page.url.rsplit("/runs/", 1)[1])
    assert follow_run(page, api, TRAINING, run_id, "06-training-run") == "Success"
    page.get_by_role("button", name="Show Graph").click()
    page.locator(".react-flow").get_by_text("promote_champion", exact=True).wait_for()
    shoot(page, "07-training-run-graph")

    run = client.DagRunApi(api).get_dag_run(TRAINING, run_id)
    assert run.conf["aupr_threshold"] == 0.3 and run.conf["tuning"] is False
    plan = plan_of(api, TRAINING, run_id, "plan_run")
    assert plan["day"] == TODAY.isoformat()
    # The same data and seed give the same model: it does not beat the champion it equals.
    assert task_states(api, TRAINING, run_id)["promote_champion"] == "skipped"
    doc = registry(server)
    assert doc["champion"] == champion
    mine = [v for v in doc["versions"] if v["pipeline_id"] == plan["pipeline_id"]]
    assert [v["status"] for v in mine] == ["candidate"]
    assert mine[0]["model_uri"] != champion_entry(server)["model_uri"]
    # The champion's files are exactly what was registered.
    assert file_hashes(Path(champion_entry(server)["model_uri"])) == champion_files
    tuning_metrics = (
        server["root"] / "metrics" / "customer-churn-model" / "hyperparameter-tuning"
        / plan["pipeline_id"] / mine[0]["attempt"] / "metrics.json"
    )  # fmt: skip
    reason = json.loads(tuning_metrics.read_text())["reason"]
    assert reason.startswith("tuning is switched off for this run")


def champion_entry(server) -> dict:
    doc = registry(server)
    return next(v for v in doc["versions"] if v["version"] == doc["champion"])


# --- 5: a backfill ------------------------------------------------------------------------------


def test_backfill_scores_each_date_into_its_own_partition(server, api):
    command = ["backfill", "create", "--dag-id", SCORING,
               "--from-date", BACKFILL_DAYS[0].isoformat(),
               "--to-date", BACKFILL_DAYS[-1].isoformat()]  # fmt: skip
    assert airflow(*command, env=server["env"]).count("Created backfill Dag run") == 2
    for day in BACKFILL_DAYS:
        pipeline_id = f"{day:%Y%m%d}"
        deadline = time.monotonic() + RUN_TIMEOUT
        while not rows(server, "batch_predictions", pipeline_id):
            assert time.monotonic() < deadline, f"backfill of {day} wrote nothing"
            time.sleep(2)
        backfilled = [r for r in runs(api, SCORING, "backfill") if r.logical_date.date() == day]
        wait_for_run(api, SCORING, backfilled[0].dag_run_id)
        scored, rejected = scored_rows(server, pipeline_id)
        assert len(scored) + rejected == BACKFILL_ROWS
        assert {r["model_version"] for r in scored} == {STATE["champion"]}
        assert {r["pipeline_execution_dt"] for r in scored} == {day}
        drift = plan_of(api, SCORING, backfilled[0].dag_run_id, "check_drift")
        assert drift["status"] != "alert" and drift["alert"] is None, drift
        assert task_states(api, SCORING, backfilled[0].dag_run_id)["publish_drift_alert"] == (
            "skipped"
        )
    assert runs(api, TRAINING, "asset_triggered") == []


# --- 6: a rollback and a clear ---------------------------------------------------------------


def latest_scored_day(api) -> str:
    import airflow_client.client as client

    (asset,) = client.AssetApi(api).get_assets(uri_pattern="batch_predictions").assets
    api_events = client.AssetApi(api).get_asset_events
    (latest,) = api_events(asset_id=asset.id, order_by=["-timestamp"], limit=1).asset_events
    return latest.extra["day"]


def test_a_rollback_re_scores_the_latest_scored_day_and_a_clear_reads_the_champion_again(
    server, api
):
    weak, better = STATE["weak"], STATE["champion"]
    day = latest_scored_day(api)
    assert day in {d.isoformat() for d in BACKFILL_DAYS}  # the backfill scored last, not today
    known = {r.dag_run_id for r in runs(api, SCORING)}
    churn = Path(sys.executable).parent / "churn"
    done = subprocess.run(
        [str(churn), "registry", "--root", str(server["root"]), "promote", weak,
         "--reason", "the new model over-predicts churn"],
        env=server["env"], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith(f"rollback to {weak} requested: {ROLLBACK} moves the champion")
    (rollback,) = runs(api, ROLLBACK)  # the DAG is on from the start: no unpause needed
    wait_for_run(api, ROLLBACK, rollback.dag_run_id)
    doc = registry(server)
    assert doc["champion"] == weak
    event = doc["history"][-1]
    assert (event["version"], event["replaced"]) == (weak, better)
    assert event["reason"].endswith(": the new model over-predicts churn")

    rescore = wait_for_new_run(api, SCORING, "asset_triggered", known)
    pipeline_id = day.replace("-", "")
    assert plan_of(api, SCORING, rescore, "plan_scoring")["day"] == day
    scored, rejected = scored_rows(server, pipeline_id)
    assert len(scored) + rejected == BACKFILL_ROWS  # the day's rows replaced
    assert {r["model_version"] for r in scored} == {weak}

    # Today's re-score pinned the champion of its time. Clearing its submit task (with the
    # downstream tasks, as the UI does) is new work: one new batch, which reads the registry
    # again and replaces the day's rows with the restored champion's.
    today, before = f"{TODAY:%Y%m%d}", batch_ids(server)
    clear(api, SCORING, STATE["rescore"], "submit_scoring")
    time.sleep(5)
    wait_for_run(api, SCORING, STATE["rescore"])
    (batch,) = batch_ids(server) - before
    assert batch.startswith(f"churn-scoring-{today}-") and batch.endswith("-2")
    scored, rejected = scored_rows(server, today)
    assert len(scored) + rejected == SCORE_ROWS
    assert {r["model_version"] for r in scored} == {weak}
    assert file_hashes(partition(server, "batch_predictions", today)) != STATE["rescore_files"]
    STATE["champion"] = weak


# --- 7: drift -----------------------------------------------------------------------------------


def drift_events(api) -> list:
    import airflow_client.client as client

    (asset,) = client.AssetApi(api).get_assets(name_pattern="customer_churn_drift").assets
    return client.AssetApi(api).get_asset_events(asset_id=asset.id).asset_events


def test_a_drift_alert_retrains_once_a_day_on_the_latest_snapshot(server, api):
    import airflow_client.client as client
    from airflow_client.client.models.create_asset_events_body import CreateAssetEventsBody
    from airflow_client.client.models.dag_run_patch_body import DAGRunPatchBody

    run_id = trigger(server, SCORING, "--conf", json.dumps({"day": DRIFT_DAY.isoformat()}))
    wait_for_run(api, SCORING, run_id)
    drift = plan_of(api, SCORING, run_id, "check_drift")
    assert drift["status"] == "alert"
    assert {"contract", "monthly_charges"} <= set(drift["alert"]["features"]), drift
    (event,) = drift_events(api)
    assert event.extra["features"] == drift["alert"]["features"]
    assert Path(event.extra["report"]).exists()

    retrain = [r.dag_run_id for r in runs(api, TRAINING, "asset_triggered")]
    deadline = time.monotonic() + 120
    while not retrain:
        assert time.monotonic() < deadline, "the drift alert started no training run"
        time.sleep(3)
        retrain = [r.dag_run_id for r in runs(api, TRAINING, "asset_triggered")]
    (first,) = retrain
    deadline = time.monotonic() + 300
    while task_states(api, TRAINING, first).get("plan_run") != "success":
        assert time.monotonic() < deadline, task_states(api, TRAINING, first)
        time.sleep(3)
    plan = plan_of(api, TRAINING, first, "plan_run")
    assert (plan["pipeline_id"], plan["day"]) == (f"{TODAY:%Y%m%d}-drift", TODAY.isoformat())
    # The retrain itself runs like any other; stop it here to save the suite's time.
    client.DagRunApi(api).patch_dag_run(TRAINING, first, DAGRunPatchBody(state="failed"))

    # A second alert the same day (here posted through the API) starts a run that skips.
    (asset,) = client.AssetApi(api).get_assets(name_pattern="customer_churn_drift").assets
    client.AssetApi(api).create_asset_event(
        CreateAssetEventsBody(asset_id=asset.id, extra={"features": {"contract": 0.5}})
    )
    second = wait_for_new_run(api, TRAINING, "asset_triggered", {first})
    states = task_states(api, TRAINING, second)
    assert states["plan_run"] == "skipped", states
    assert registry(server)["drift_retrains"] == {f"{TODAY:%Y%m%d}-drift": plan["run_key"]}


def test_promotions_drift_and_late_runs_were_notified(server, api):
    from churn_airflow.notify import LOCAL_FILE

    lines = (server["root"] / LOCAL_FILE).read_text().splitlines()
    messages = [json.loads(line) for line in lines]
    promotions = [m for m in messages if m["kind"] == "promotion"]
    promoted = [m["title"] for m in promotions if m["level"] == "success"]
    assert len(promoted) >= 2 and all(t.endswith("is the champion") for t in promoted), promoted
    refused = [m for m in promotions if m["level"] == "info"]
    assert refused and all("is not promoted" in m["title"] for m in refused)
    (drift,) = [m for m in messages if m["kind"] == "drift" and m["level"] == "failure"]
    assert drift["title"].startswith(f"drift alert on {DRIFT_DAY.isoformat()}")
    assert "Contract" in drift["body"] or "contract" in drift["body"], drift
    late = {(m["dag_id"], m["run_id"]) for m in messages if m["kind"] == "deadline"}
    trained = {(TRAINING, r.dag_run_id) for r in runs(api, TRAINING)}
    scored = {(SCORING, r.dag_run_id) for r in runs(api, SCORING)}
    backfilled = {(SCORING, r.dag_run_id) for r in runs(api, SCORING, "backfill")}
    assert late & trained and late <= trained | scored, (late, trained, scored)
    assert backfilled and backfilled <= late  # a past day is late from its start


def test_a_failing_task_notifies_once(server, api):
    """A rollback to a version nobody registered fails at once (a retry cannot register it),
    and the failure callback tells it once, with the reason and the log."""
    from churn_airflow.notify import LOCAL_FILE

    conf = json.dumps({"version": "nope", "reason": "a failure the test asks for"})
    run_id = wait_for_run(api, ROLLBACK, trigger(server, ROLLBACK, "--conf", conf), "failed")
    assert task_states(api, ROLLBACK, run_id) == {"roll_back": "failed"}
    lines = (server["root"] / LOCAL_FILE).read_text().splitlines()
    failures = [
        m for m in map(json.loads, lines) if (m["kind"], m["run_id"]) == ("failure", run_id)
    ]
    (failure,) = failures
    assert failure["title"] == f"{ROLLBACK}.roll_back failed"
    assert failure["body"].startswith("version 'nope' is not registered; known: ["), failure
    assert "(try 1; log: " in failure["body"], failure  # one try: no retry


def test_lineage_links_the_champions_training_day_to_the_days_it_scored(server):
    """The Spark jobs' run events and the Airflow tasks' (the compose file's OpenLineage
    transport, one file): the first champion's raw training day, through its training_data
    partition, to the predictions of today scored with it; each job run under the Airflow task
    run that started it."""
    events = lineage.read_events(Path(layout.lineage_file(str(server["root"]))))
    graph = lineage_graph.select(lineage_graph.build(events), STATE["weak"])
    jobs = {}
    for run in graph.runs.values():
        jobs.setdefault(run.job, []).append(run)
    (trained,) = jobs[stages.TRAINING.name]
    (preprocessed,) = [r for r in jobs[stages.PREPROCESSING.name] if r.attempt == trained.attempt]
    partition = lineage_graph.Dataset(
        "file", f"{server['root']}/warehouse/customer_churn_ds/training_data", trained.pipeline_id
    )
    raw = server["root"] / "landing" / "train" / f"dt={NOISE_DAY.isoformat()}"
    assert graph.inputs[preprocessed.run_id] == [lineage_graph.Dataset("file", str(raw))]
    assert graph.outputs[preprocessed.run_id] == [partition]
    assert graph.inputs[trained.run_id] == [partition]
    scored_today = next(r for r in jobs[stages.SCORING.name] if r.pipeline_id == f"{TODAY:%Y%m%d}")
    assert scored_today.model_version == STATE["weak"]
    assert graph.inputs[scored_today.run_id][1] == graph.outputs[trained.run_id][0]  # the model
    predictions = graph.outputs[scored_today.run_id][0]
    assert (predictions.name.rsplit("/", 1)[1], predictions.partition) == (
        "batch_predictions",
        f"{TODAY:%Y%m%d}",
    )
    tasks = {
        e["run"]["runId"]: e["job"]["name"] for e in events if e["job"]["namespace"] == "default"
    }
    for event in events:
        if event["job"]["namespace"] == "customer-churn" and event["run"]["runId"] in graph.runs:
            parent = event["run"]["facets"]["parent"]
            assert tasks[parent["run"]["runId"]] == parent["job"]["name"], parent
    assert {r.parent for r in jobs[stages.SCORING.name]} == {f"{SCORING}.submit_scoring"}
    assert trained.parent == f"{TRAINING}.run_training_pipeline"


# --- the services work together --------------------------------------------------------------


def test_the_api_server_reads_a_task_log_from_the_scheduler(server, api):
    """The API server fetches logs from the worker's log server: with the compose file's
    shared API secret key it may; without it, it gets 403."""
    import airflow_client.client as client

    run_id = STATE["rescore"]
    log = client.TaskInstanceApi(api).get_log(SCORING, run_id, "plan_scoring", 1, full_content=True)
    text = log.to_json()
    assert "Pushing xcom" in text or "Returned value" in text, text[:2000]
    # a refused fetch reads "... 403 Client Error: FORBIDDEN ..." (a bare "403" can be a
    # timestamp's digits)
    assert "FORBIDDEN" not in text.upper() and "Could not read served logs" not in text, text[:2000]
