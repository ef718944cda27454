"""Both DAGs on a Cloud Composer 3-shaped Airflow, on the ``gcp`` backend, offline.

What the deploy uploads (its own plan, ``deployed.lay_out``) is all these processes have of this
project; their Python has the lock's packages (the environment's PyPI packages), not this
repository or its editable install. As on Composer 3:

- the DAG processor and the workers get the environment's ``dags/`` and ``plugins/``; the
  triggerer gets neither (empty folders). The LocalExecutor's workers are the scheduler's
  children, so the scheduler has the ``dags/`` folder configured for them; it parses nothing.
- Google is the fake cloud of ``fake_cloud``: the Vertex pipeline job, the Dataproc batch and
  BigQuery are faked at their client methods; GCS is a real GCS JSON API server; credentials
  come from a GCE metadata server through ADC, with Composer's keyless ``google_cloud_default``.
- ``[operators] default_deferrable`` is on, as many Composer users set it.

The story, in order (each test builds on the last):

1. training, triggered with ``--logical-date`` then unpaused: its first poll of the Vertex job
   fails in the triggerer, and the automatic retry re-attaches to the same job; the model is
   promoted.
2. scoring, unpaused: its scheduled run submits one batch; its sensor's first poll fails and the
   retry finds the batch done; the day's predictions validate.
3. a clear of the training run (from its plan): one new pipeline job, whose model beats the
   champion; the champion's asset event starts a re-score.
4. a clear of the scheduled scoring run's submit task: a new batch.
"""

from __future__ import annotations

import datetime as dt
import json
import time

import psutil
import pytest

from churn_airflow import scoring
from churn_core import layout
from churn_core.pipeline_params import Environment
from churn_tools import composer_deploy
from tests import gcs_emulator
from tests.composer import deployed, fake_cloud_state, metadata_server
from tests.dags.compose_stack import airflow, free_port, stack
from tests.tools.test_composer_deploy import BUCKETS, GIVEN, LOCATION, PROJECT

pytestmark = pytest.mark.slow

TRAINING, SCORING = "customer_churn_training", "customer_churn_batch_scoring"
EMAIL = f"composer-env@{PROJECT}.iam.gserviceaccount.com"
ROWS = {"rows_in": 20, "customers_in": 20, "scored": 18, "rejected": 2}
RUN_TIMEOUT = 600
SCRIPT = {
    # the triggerer's first poll of a job fails; the retry's poll finds it running; the next,
    # in the triggerer again, finds it done
    "pipeline_jobs": {"polls_until_done": 3, "fail_polls": [1]},
    # the submit reads the batch (poll 1); the sensor's first poke fails; its retry finds it done
    "batches": {"polls_until_done": 3, "fail_polls": [2]},
    "projects": {PROJECT: "1234"},  # the GCS emulator's project number
}
BIGQUERY = [
    {"contains": ["COUNT(*)", f"{layout.DATASET}.{table}"], "rows": [[ROWS[key]]]}
    for table, key in ((layout.BATCH_PREDICTIONS, "scored"), (layout.BATCH_REJECTS, "rejected"))
]
# What the jobs would have written, written by "Google" when a job succeeds: the pipeline's
# training metrics (better than any champion it was compared with), the scoring run's stats
# and drift report, at the places the jobs' own arguments name.
ON_SUCCESS = """
import json, sys
from google.cloud import storage

sys.path.append({dags!r})  # the fake cloud's own use of the uploaded contracts: Vertex runs no DAG
from churn_core import layout, stages
from churn_core.run_records import DriftReport, ModelMetrics, RunStats
ROWS = {rows!r}


def put(uri, doc):
    bucket, _, name = uri.removeprefix("gs://").partition("/")
    storage.Client().bucket(bucket).blob(name).upload_from_string(json.dumps(doc))


def on_success(kind, resource, state_dir):
    if kind == "pipeline_jobs":
        p = resource["runtime_config"]["parameter_values"]
        root, run, attempt = p["artifact_root"], p["pipeline_id"], p["attempt"]
        comparison = None
        if p["champion_version"]:
            comparison = {{
                "champion": p["champion_version"], "comparable": True, "rows": 400,
                "replicates": 1000, "confidence": 0.95,
                "au_pr": {{"challenger": 0.74, "champion": 0.66, "delta": 0.08,
                          "lower": 0.03, "upper": 0.13}},
            }}
        put(layout.metrics_file(root, stages.TRAINING, run, attempt), ModelMetrics(
            pipeline_id=run, pipeline_execution_dt=p["pipeline_execution_dt"],
            operation=stages.TRAINING.folder, seed=int(p["seed"]),
            model_uri=layout.model_uri(root, stages.TRAINING, run, attempt),
            metrics={{"au_pr": 0.74 if comparison else 0.66, "au_roc": 0.84}},
            comparison=comparison,
        ).to_json())
    else:
        args = resource["pyspark_batch"]["args"]
        value = dict(zip(args[::2], args[1::2]))
        run = {{"pipeline_id": value["--pipeline-id"], "pipeline_execution_dt": value["--day"],
               "model_version": value["--model-version"]}}
        put(value["--stats-uri"], RunStats(**run, repeated_headers=0, **ROWS).to_json())
        thresholds = {{"warning": float(value["--drift-warning"]),
                       "alert": float(value["--drift-alert"])}}
        put(value["--drift-uri"] + "/" + layout.DRIFT_JSON, DriftReport.unmeasured(
            run, thresholds, "the fake cloud measured no drift").to_json())
"""


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


@pytest.fixture(scope="module")
def composer(tmp_path_factory):
    base = tmp_path_factory.mktemp("composer")
    variables = deployed.lay_out(base / "gcs")
    bucket = deployed.environment_bucket(base / "gcs")
    python = str(deployed.lock_python(base))
    nothing = base / "nothing"
    nothing.mkdir()

    def folders(service: str):
        if service == "airflow-triggerer":
            return nothing, nothing
        return bucket / "dags", bucket / "plugins"

    state = fake_cloud_state.prepare(
        base / "cloud",
        SCRIPT,
        BIGQUERY,
        ON_SUCCESS.format(dags=str(bucket / "dags"), rows=ROWS),
    )
    site = fake_cloud_state.install(base / "site")
    (base / "gcloud").mkdir()
    logs = base / "logs"
    logs.mkdir()
    with (
        gcs_emulator.serve() as gcs,
        gcs_emulator.generation_preconditions(),
        metadata_server.serve(PROJECT, EMAIL) as metadata,
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setenv("STORAGE_EMULATOR_HOST", gcs)
        patch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
        upload(base / "gcs")
        environment = {
            **variables,  # what the deploy sets: CHURN_BACKEND=gcp and every setting
            **metadata_server.env(metadata),
            **fake_cloud_state.env(state, site),
            "STORAGE_EMULATOR_HOST": gcs,
            "CHURN_ROOT": str(base / "unused"),  # the local backend's: nothing goes there
            "CLOUDSDK_CONFIG": str(base / "gcloud"),
            "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT": '{"conn_type": "google_cloud_platform"}',
            "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
            "AIRFLOW__CORE__MAX_TASK_RETRY_DELAY": "5",  # the cloud tasks' backoff, capped
            "CHURN_CLOUD_POLL": "3s",  # the Vertex job and the batch: looked at every 3 s
        }
        home = base / "airflow"
        init = ["-m", "airflow", "db", "migrate"]
        with stack(home, free_port(), environment, logs, python, folders, init) as services:
            api = f"http://localhost:{services['env']['AIRFLOW__API__PORT']}"
            token = api_token(api, services["api_home"])
            create_pool(api, token)
            yield {
                "env": services["env"],
                "python": python,
                "state": state,
                "logs": logs,
                "pids": services["pids"],
                "api": api,
                "token": token,
                "bucket": bucket,
                "home": home,
            }


def gcs_client():
    """This process's client of the GCS API server (it checks no credentials)."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project=PROJECT, credentials=AnonymousCredentials())


def upload(root) -> None:
    """The buckets: what the deploy uploaded to the code bucket, and the day's raw inputs."""
    from churn_ml import sample_data

    client = gcs_client()
    for name in BUCKETS.values():
        client.create_bucket(name)
    code = root / BUCKETS["code_bucket"]
    for path in sorted(p for p in code.rglob("*") if p.is_file()):
        blob = client.bucket(BUCKETS["code_bucket"]).blob(path.relative_to(code).as_posix())
        blob.upload_from_filename(str(path))
    inputs = root / "inputs"
    for kind, labelled in ((layout.TRAIN_INPUT, True), (layout.SCORE_INPUT, False)):
        (day_file,) = sample_data.write_daily_partitions(
            inputs / kind, [today()], ROWS["rows_in"], seed=5, with_label=labelled
        )
        for path in (day_file, day_file.parent / layout.COMPLETE_MARKER):  # the marker last
            name = f"{layout.landing_prefix(kind, today())}/{path.name}"
            client.bucket(BUCKETS["data_bucket"]).blob(name).upload_from_filename(str(path))


def request(url: str, token: str | None = None, body: dict | None = None, method: str = "GET"):
    import requests

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = requests.request(method, url, json=body, headers=headers, timeout=60)
    assert answer.ok, f"{method} {url}: {answer.status_code} {answer.text[:500]}"
    return answer.json()


def api_token(api: str, home) -> str:
    passwords = home / "simple_auth_manager_passwords.json.generated"
    password = json.loads(passwords.read_text())["admin"]
    login = {"username": "admin", "password": password}
    return request(f"{api}/auth/token", body=login, method="POST")["access_token"]


def create_pool(api: str, token: str) -> None:
    """The deploy's own pool request, sent to this Airflow's REST API."""
    environment = composer_deploy.ComposerEnvironment("gs://x", api, "", 1, {})
    pool = composer_deploy.pool_request(environment)
    answer = request(pool.url, token, pool.body, pool.method)
    assert answer["create"]["errors"] == [], answer


def cli(composer, *args: str) -> str:
    return airflow(*args, env=composer["env"], python=composer["python"])


def runs(composer, dag_id: str) -> list[dict]:
    """The DAG's runs, newest first, as the REST API tells them."""
    url = f"{composer['api']}/api/v2/dags/{dag_id}/dagRuns?order_by=-run_after"
    return request(url, composer["token"])["dag_runs"]


def wait_for(composer, dag_id: str, count: int) -> list[dict]:
    """The DAG's runs once ``count`` of them have ended; fails on a failed run."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        found = runs(composer, dag_id)
        failed = [r for r in found if r["state"] == "failed"]
        assert not failed, f"{dag_id} failed: {failed}\n{task_logs(composer)}"
        if sum(r["state"] == "success" for r in found) >= count:
            return found
        time.sleep(5)
    raise AssertionError(f"{dag_id}: no {count} finished runs in {RUN_TIMEOUT} s: {found}")


def clear(composer, dag_id: str, run_id: str, task_id: str) -> None:
    """Clear a task and its downstream tasks, as the UI does."""
    body = {"dag_run_id": run_id, "task_ids": [task_id], "include_downstream": True,
            "only_failed": False, "dry_run": False}  # fmt: skip
    url = f"{composer['api']}/api/v2/dags/{dag_id}/clearTaskInstances"
    cleared = request(url, composer["token"], body, "POST")["task_instances"]
    assert task_id in {ti["task_id"] for ti in cleared}, cleared


def wait_for_rerun(composer, dag_id: str, run_id: str, since: dt.datetime) -> None:
    """Until the run, cleared at ``since``, has succeeded again."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        run = next(r for r in runs(composer, dag_id) if r["dag_run_id"] == run_id)
        assert run["state"] != "failed", f"{run}\n{task_logs(composer)}"
        ended = run["end_date"] and dt.datetime.fromisoformat(run["end_date"]) > since
        if run["state"] == "success" and ended:
            return
        time.sleep(5)
    raise AssertionError(f"{dag_id} {run_id} did not succeed again in {RUN_TIMEOUT} s")


def task_logs(composer) -> str:
    """The tail of every service's log, for a failure's message."""
    return "\n".join(
        f"--- {log.name}\n{log.read_text()[-3000:]}" for log in sorted(composer["logs"].iterdir())
    )


def tries(composer, dag_id: str, run_id: str) -> dict[str, int]:
    url = f"{composer['api']}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
    found = request(url, composer["token"])["task_instances"]
    return {t["task_id"]: t["try_number"] for t in found}


def calls(composer, method: str) -> list[dict]:
    return [r for r in fake_cloud_state.requests(composer["state"]) if r["method"] == method]


def created(composer, kind: str) -> list[dict]:
    method = {"pipeline_jobs": "PipelineServiceClient.create_pipeline_job"}.get(
        kind, "BatchControllerClient.create_batch"
    )
    return [c for c in calls(composer, method) if c["error"] is None]


def registry(composer) -> dict:
    name = layout.MODEL_NAME
    blob = gcs_client().bucket(BUCKETS["model_bucket"]).blob(f"registry/{name}.json")
    return json.loads(blob.download_as_bytes())


def triggerer_family(composer) -> set[int]:
    triggerer = psutil.Process(composer["pids"]["airflow-triggerer"])
    return {triggerer.pid, *(p.pid for p in triggerer.children(recursive=True))}


def test_training_retries_a_failed_poll_on_the_same_vertex_job(composer):
    day = today()
    cli(composer, "dags", "trigger", TRAINING, "--logical-date", f"{day}T00:00:00+00:00")
    cli(composer, "dags", "unpause", TRAINING)
    (run,) = wait_for(composer, TRAINING, 1)
    assert run["run_type"] == "manual"
    # Try 1 failed on the poll; any later try re-attached. (Under load Airflow's scheduler can
    # take a task resumed from deferral for a killed one, when the executor's event of the
    # deferring process comes after the resume: one more try, and still one job.)
    assert tries(composer, TRAINING, run["dag_run_id"])["run_training_pipeline"] >= 2
    (job,) = created(composer, "pipeline_jobs")  # the retries re-attached: one job
    values = job["request"]["pipeline_job"]["runtime_config"]["parameter_values"]
    assert values["pipeline_id"] == f"{day:%Y%m%d}-manual-000000"
    assert values["attempt"].endswith("-1") and values["champion_version"] == ""
    # The deferred task waited in slices in the triggerer, which has none of this project,
    # and looked at its job from a worker after each (logging the steps a real job has).
    polls = calls(composer, "PipelineServiceClient.get_pipeline_job")
    assert polls[0]["error"] and not polls[-1]["error"]  # the failed poll; the one that ended it
    assert polls[-1]["state"] == "PIPELINE_STATE_SUCCEEDED"
    assert not {p["pid"] for p in polls} & triggerer_family(composer)
    assert calls(composer, "PipelineServiceAsyncClient.get_pipeline_job") == []
    champion = registry(composer)["champion"]
    assert champion == f"{values['pipeline_id']}-training-{values['attempt']}"


def test_scoring_retries_a_failed_poll_of_its_batch(composer):
    cli(composer, "dags", "unpause", SCORING)
    run = next(r for r in wait_for(composer, SCORING, 1) if r["run_type"] == "scheduled")
    found = tries(composer, SCORING, run["dag_run_id"])
    assert (found["submit_scoring"], found["wait_for_scoring"]) == (1, 2)
    (batch,) = created(composer, "batches")
    sent = batch["request"]["batch"]
    pipeline_id = f"{today():%Y%m%d}"
    champion = registry(composer)["champion"]
    entry = next(v for v in registry(composer)["versions"] if v["version"] == champion)
    env = Environment.gcp(PROJECT, LOCATION, *BUCKETS.values(), **batch_settings())
    attempt = batch["request"]["batch_id"].removeprefix(f"churn-scoring-{pipeline_id}-")
    args = scoring.scoring_args(
        env, pipeline_id, today(), entry["model_uri"], champion, attempt=attempt
    )
    args += ["--max-reject-fraction", "0.05"]
    expected = scoring.dataproc_batch(env, pipeline_id, args)
    assert sent["pyspark_batch"]["args"] == expected["pyspark_batch"]["args"]
    execution = sent["environment_config"]["execution_config"]
    assert execution["ttl"] == "43200s"
    assert execution["service_account"] == GIVEN["scoring_service_account"]  # not the runtime's
    assert execution["authentication_config"] == {
        "user_workload_authentication_type": "SERVICE_ACCOUNT"
    }
    assert batch["request"]["batch_id"].startswith(f"churn-scoring-{pipeline_id}-")


def batch_settings() -> dict:
    keys = ("service_account", "scoring_service_account", "subnetwork_uri", "runtime_version")
    return {key: GIVEN[key] for key in keys}


def test_a_cleared_training_run_starts_one_new_job_and_its_champion_rescores(composer):
    fake_cloud_state.set_script(composer["state"], {**SCRIPT, "pipeline_jobs": {}})
    champion = registry(composer)["champion"]
    (run,) = runs(composer, TRAINING)
    cleared = dt.datetime.now(dt.UTC)
    clear(composer, TRAINING, run["dag_run_id"], "plan_run")
    wait_for_rerun(composer, TRAINING, run["dag_run_id"], cleared)
    jobs = created(composer, "pipeline_jobs")
    assert len(jobs) == 2  # the clear's new job, and no other
    first, values = (
        j["request"]["pipeline_job"]["runtime_config"]["parameter_values"] for j in jobs
    )
    assert values["attempt"] != first["attempt"]  # the first try since the clear: new work
    assert values["champion_version"] == champion  # the new plan compared with it
    new_champion = registry(composer)["champion"]
    assert new_champion == f"{values['pipeline_id']}-training-{values['attempt']}"
    found = wait_for(composer, SCORING, 2)
    rescore = next(r for r in found if r["run_type"] == "asset_triggered")
    assert rescore["state"] == "success"
    batches = created(composer, "batches")
    assert len(batches) == 2
    assert new_champion in batches[1]["request"]["batch"]["pyspark_batch"]["args"]


def test_a_cleared_scoring_submit_starts_a_new_batch(composer):
    scheduled = next(r for r in runs(composer, SCORING) if r["run_type"] == "scheduled")
    cleared = dt.datetime.now(dt.UTC)
    clear(composer, SCORING, scheduled["dag_run_id"], "submit_scoring")
    wait_for_rerun(composer, SCORING, scheduled["dag_run_id"], cleared)
    batches = created(composer, "batches")
    assert len(batches) == 3
    assert batches[2]["request"]["batch_id"].endswith("-2")


def test_every_deferral_resumed_through_the_triggerer(composer):
    """The triggerer, with neither dags/ nor plugins/, ran every deferred task's trigger: a
    standard one of Airflow's own packages. (The input sensors found their day at once, so
    they did not defer.)"""
    logs = composer["home"] / "airflow-triggerer" / "logs"
    deferred = {p.parent.name.removeprefix("task_id=") for p in logs.rglob("*.log.trigger.*")}
    assert deferred == {"run_training_pipeline"}
    log = (composer["logs"] / "airflow-triggerer.log").read_text()
    assert "ModuleNotFoundError" not in log and "ImportError" not in log


def test_the_api_server_shows_the_tasks(composer):
    tasks = request(f"{composer['api']}/api/v2/dags/{TRAINING}/tasks", composer["token"])
    assert {t["task_id"] for t in tasks["tasks"]} >= {"run_training_pipeline", "promote_champion"}
