"""The Airflow UI in a real browser, and the REST API client, against ``airflow standalone``.

Headless Debian Chromium, driven by Playwright, logs in, finds both DAGs with no import
errors, opens each graph, triggers the training DAG from the trigger form with non-default
params and follows the run to success. Then the REST API client triggers the scoring DAG and
polls it. Screenshots go to ``test-output/ui/``.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
import urllib.parse
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from churn_airflow import airflow_setup
from tests.dags.conftest import REPO
from tests.dags.standalone import airflow_env, standalone

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
PORT = 18795
BASE = f"http://localhost:{PORT}"
SHOTS = REPO / "test-output" / "ui"
TRAINING, SCORING = "customer_churn_training", "customer_churn_batch_scoring"
TRAIN_ROWS, SCORE_ROWS = 3000, 500
RUN_TIMEOUT = 900

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A fresh Airflow (own SQLite home and churn root) with today's inputs landed."""
    from churn_ml import sample_data

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    home, root = tmp_path_factory.mktemp("ui-home"), tmp_path_factory.mktemp("ui-root")
    today = dt.datetime.now(dt.UTC).date()
    sample_data.write_daily_partitions(root / "landing" / "train", [today], TRAIN_ROWS, seed=5)
    sample_data.write_daily_partitions(
        root / "landing" / "score", [today], SCORE_ROWS, seed=6, with_label=False
    )
    env = airflow_env(
        PORT,
        AIRFLOW_HOME=str(home),
        CHURN_ROOT=str(root),
        CHURN_BACKEND="local",
        # Only runs the test asks for: no scheduled or asset-triggered runs of unpaused DAGs.
        AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False",
    )
    airflow_setup.main(env)
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    with standalone(env, SHOTS / "standalone.log", wait=True):
        password_file = home / "simple_auth_manager_passwords.json.generated"
        yield {"root": root, "password": json.loads(password_file.read_text())["admin"]}


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(60_000)
        yield page
        browser.close()


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
        yield api_client


def shoot(page, name: str) -> None:
    page.screenshot(path=SHOTS / f"{name}.png", full_page=True)


def wait_until_parsed(api) -> None:
    import airflow_client.client as client

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if client.DAGApi(api).get_dags().total_entries == 2:
            return
        time.sleep(3)
    raise AssertionError("the DAG processor did not parse both DAGs in 3 minutes")


def log_in(page, password: str) -> None:
    page.goto(f"{BASE}/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{BASE}/")


def follow_run(page, dag_id: str, run_id: str, name: str) -> str:
    """Reloads the run's page until the state badge by its title shows an end state."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        page.goto(f"{BASE}/dags/{dag_id}/runs/{run_id}")
        title = page.get_by_role("heading", name=run_id, exact=True)
        state = title.locator("xpath=..").get_by_test_id("state-badge").inner_text().strip()
        if state in ("Success", "Failed"):
            shoot(page, name)
            return state
        time.sleep(10)
    shoot(page, name)
    raise AssertionError(f"{dag_id} run {run_id} did not end in {RUN_TIMEOUT} s")


def test_ui_lists_graphs_and_triggers_training_with_params(server, page, api):
    import airflow_client.client as client

    wait_until_parsed(api)
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
        TRAINING: ["wait_for_training_data", "plan_run", "run_training_pipeline",
                   "promote_champion"],
        SCORING: ["wait_for_scoring_input", "resolve_champion", "submit_scoring",
                  "wait_for_scoring", "validate_predictions"],
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
    run_id = urllib.parse.unquote(page.url.rsplit("/runs/", 1)[1])

    assert follow_run(page, TRAINING, run_id, "06-training-run") == "Success"
    page.get_by_role("button", name="Show Graph").click()
    page.locator(".react-flow").get_by_text("promote_champion", exact=True).wait_for()
    shoot(page, "07-training-run-graph")

    run = client.DagRunApi(api).get_dag_run(TRAINING, run_id)
    assert run.conf["aupr_threshold"] == 0.3 and run.conf["tuning"] is False
    registry = json.loads((server["root"] / "registry" / "customer-churn-model.json").read_text())
    pipeline_id = registry["versions"][0]["pipeline_id"]
    assert registry["champion"] == f"{pipeline_id}-training"  # tuning off: the trained model
    assert "passes 0.3" in registry["history"][-1]["reason"]
    tuning_metrics = server["root"] / "metrics" / "customer-churn-model" / "hyperparameter-tuning"
    assert json.loads((tuning_metrics / pipeline_id / "metrics.json").read_text())["status"] == (
        "skipped"
    )


def test_rest_client_triggers_and_polls_scoring(server, api):
    """Runs after the UI test, whose training run made the champion this run scores with."""
    import airflow_client.client as client
    from airflow_client.client.models.dag_patch_body import DAGPatchBody
    from airflow_client.client.models.trigger_dag_run_post_body import TriggerDAGRunPostBody

    registry = json.loads((server["root"] / "registry" / "customer-churn-model.json").read_text())
    runs = client.DagRunApi(api)
    client.DAGApi(api).patch_dag(SCORING, DAGPatchBody(is_paused=False))
    body = TriggerDAGRunPostBody(logical_date=dt.datetime.now(dt.UTC), conf={})
    run_id = runs.trigger_dag_run(SCORING, body).dag_run_id

    deadline = time.monotonic() + RUN_TIMEOUT
    state = runs.get_dag_run(SCORING, run_id).state
    while state not in ("success", "failed") and time.monotonic() < deadline:
        time.sleep(10)
        state = runs.get_dag_run(SCORING, run_id).state
    tasks = client.TaskInstanceApi(api).get_task_instances(SCORING, run_id).task_instances
    assert state == "success", {t.task_id: t.state for t in tasks}

    warehouse = server["root"] / "warehouse" / "customer_churn_ds"
    (partition,) = (warehouse / "batch_predictions").glob("pipeline_id=*")
    scored = pq.read_table(partition).to_pylist()
    rejects = warehouse / "batch_rejects" / partition.name
    rejected = pq.read_table(rejects).num_rows if rejects.exists() else 0
    assert len(scored) + rejected == SCORE_ROWS
    assert {r["model_version"] for r in scored} == {registry["champion"]}
