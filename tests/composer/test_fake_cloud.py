"""The fake cloud itself, driven by the provider's real hooks and triggers in one subprocess.

The subprocess (``fake_cloud_driver.py``) has what an Airflow process of the Composer test has:
the fake cloud's ``sitecustomize`` on ``PYTHONPATH``, the metadata server for ADC, a GCS
emulator, ``google_cloud_default`` without a key. It runs its steps once; each test checks some
of their results, the request log, the stored jobs or the outputs ``on_success`` wrote.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.composer import fake_cloud_state, metadata_server

PROJECT, REGION, BUCKET = "composer-proj", "us-central1", "churn-bkt"
PROJECT_NUMBER = "4242"  # the GCS emulator's buckets' projectNumber, and the fake's project
EMAIL = f"composer@{PROJECT}.iam.gserviceaccount.com"
DRIVER = Path(__file__).with_name("fake_cloud_driver.py")

# The pipeline template the driver submits: one required and one optional parameter.
TEMPLATE = {
    "pipelineInfo": {"name": "tiny"},
    "schemaVersion": "2.1.0",
    "sdkVersion": "kfp-2.17.3",
    "root": {
        "inputDefinitions": {
            "parameters": {
                "day": {"parameterType": "STRING"},
                "n": {"parameterType": "NUMBER_INTEGER", "defaultValue": 3, "isOptional": True},
            }
        },
        "dag": {"tasks": {}},
    },
    "components": {},
    "deploymentSpec": {"executors": {}},
}
SCRIPT = {
    "pipeline_jobs": {
        "polls_until_done": 3,
        "by_id_prefix": {
            "tiny-flaky": {"polls_until_done": 4, "fail_polls": [2, 3]},
            "tiny-doomed": {
                "polls_until_done": 1,
                "final_state": "PIPELINE_STATE_FAILED",
                "error_message": "step train failed",
            },
        },
    },
    "batches": {"polls_until_done": 2, "by_id_prefix": {"flaky-": {"fail_polls": [1]}}},
    "projects": {PROJECT: PROJECT_NUMBER},
}
ANSWERS = [
    {"contains": ["COUNT(*)", "p.d.scores"], "params": {"pipeline_id": "20261129"}, "rows": [[7]]},
    {"contains": ["COUNT(*)", "p.d.scores"], "rows": [[0]]},
]
# Writes what a successful job "produced" to GCS: the file the DAG would read next.
ON_SUCCESS = """
import json, os
from google.cloud import storage

def on_success(kind, resource, state_dir):
    job_id = resource["name"].rsplit("/", 1)[-1]
    blob = storage.Client(project="composer-proj").bucket("churn-bkt").blob(
        f"outputs/{kind}/{job_id}.json"
    )
    blob.upload_from_string(json.dumps({"state": resource["state"], "pid": os.getpid()}))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def gcs():
    """A GCS emulator with the bucket and the template; yields (endpoint URL, client)."""
    from gcp_storage_emulator.server import create_server
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    port = free_port()
    server = create_server(
        "127.0.0.1", port, in_memory=True, default_bucket=BUCKET, project_number=PROJECT_NUMBER
    )
    server.start()
    url = f"http://127.0.0.1:{port}"
    client = storage.Client(
        project=PROJECT, credentials=AnonymousCredentials(), client_options={"api_endpoint": url}
    )
    client.bucket(BUCKET).blob("templates/tiny.json").upload_from_string(json.dumps(TEMPLATE))
    try:
        yield url, client
    finally:
        server.stop()


@pytest.fixture(scope="module")
def run(tmp_path_factory, gcs):
    """Runs the driver once: yields (its results, the state folder)."""
    root = tmp_path_factory.mktemp("fake-cloud")
    state = fake_cloud_state.prepare(root / "state", SCRIPT, ANSWERS, ON_SUCCESS)
    site = fake_cloud_state.install(root / "site")
    (root / "gcloud").mkdir()
    out = root / "results.json"
    with metadata_server.serve(PROJECT, EMAIL) as address:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "AIRFLOW"))}
        env.update(metadata_server.env(address))
        env.update(fake_cloud_state.env(state, site))
        env.update(
            CLOUDSDK_CONFIG=str(root / "gcloud"),
            STORAGE_EMULATOR_HOST=gcs[0],
            AIRFLOW_HOME=str(root / "airflow"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT=json.dumps({"conn_type": "google_cloud_platform"}),
        )
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, str(DRIVER), str(out), PROJECT, REGION, BUCKET],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
    assert done.returncode == 0, done.stderr[-5000:]
    results = json.loads(out.read_text())
    results["wall_seconds"] = {"value": time.monotonic() - started}
    return results, state


def value(results: dict, step: str):
    assert "value" in results[step], f"{step}: {results[step]}"
    return results[step]["value"]


def error(results: dict, step: str) -> tuple[str, str]:
    assert "error" in results[step], f"{step} did not fail: {results[step]}"
    return results[step]["error"], results[step]["message"]


def calls(state, method_suffix: str) -> list[dict]:
    return [r for r in fake_cloud_state.requests(state) if r["method"].endswith(method_suffix)]


JOB = f"projects/{PROJECT}/locations/{REGION}/pipelineJobs/"
BATCH = f"projects/{PROJECT}/locations/{REGION}/batches/"


def test_adc_comes_from_the_metadata_server(run):
    results, state = run
    assert value(results, "sitecustomize").startswith(str(state.parent / "site"))
    assert value(results, "adc") == {
        "type": "google.auth.compute_engine.credentials.Credentials",
        "project": PROJECT,
    }
    # every faked call was authorized with a token of the metadata server's account
    answered = [r for r in fake_cloud_state.requests(state) if r["principal"]]
    assert answered
    assert {r["principal"] for r in answered} == {EMAIL}


def test_pipeline_job_lives_by_the_script(run):
    results, state = run
    assert value(results, "vertex.submit") == {"job_id": "tiny-1", "name": JOB + "tiny-1"}
    assert value(results, "vertex.get_1") == "PIPELINE_STATE_RUNNING"  # poll 1 of 3
    (event,) = value(results, "vertex.trigger")  # polls 2 and 3, from the async client
    assert event["status"] == "success"
    assert event["job"]["name"] == JOB + "tiny-1"
    assert value(results, "vertex.get_after") == "PIPELINE_STATE_SUCCEEDED"
    polls = [
        (r["method"], r["poll"], r["state"])
        for r in calls(state, "get_pipeline_job")
        if r["request"] == {"name": JOB + "tiny-1"}
    ]
    assert polls[:4] == [
        ("PipelineServiceClient.get_pipeline_job", 1, "PIPELINE_STATE_RUNNING"),
        ("PipelineServiceAsyncClient.get_pipeline_job", 2, "PIPELINE_STATE_RUNNING"),
        ("PipelineServiceAsyncClient.get_pipeline_job", 3, "PIPELINE_STATE_SUCCEEDED"),
        ("PipelineServiceClient.get_pipeline_job", 4, "PIPELINE_STATE_SUCCEEDED"),
    ]


def test_pipeline_job_create_request_is_the_sdks(run):
    _, state = run
    create = calls(state, "create_pipeline_job")[0]
    assert create["method"] == "PipelineServiceClient.create_pipeline_job"
    assert create["error"] is None
    request = create["request"]
    assert request["parent"] == f"projects/{PROJECT}/locations/{REGION}"
    assert request["pipeline_job_id"] == "tiny-1"
    job = request["pipeline_job"]
    assert job["pipeline_spec"]["pipelineInfo"] == {"name": "tiny"}  # read from GCS
    assert job["runtime_config"] == {
        "gcs_output_directory": f"gs://{BUCKET}/pipeline-root",
        "parameter_values": {"day": "2026-11-29"},
    }
    assert job["service_account"] == f"runner@{PROJECT}.iam.gserviceaccount.com"
    assert job["labels"]["pipeline"] == "tiny"
    stored = fake_cloud_state.resources(state, "pipeline_jobs")[JOB + "tiny-1"]
    assert stored["state"] == "PIPELINE_STATE_SUCCEEDED"
    assert stored["runtime_config"] == job["runtime_config"]
    assert {"create_time", "start_time", "end_time"} <= set(stored)


def test_pipeline_job_errors(run):
    results, _ = run
    assert error(results, "vertex.submit_again")[0] == "AlreadyExists"
    assert error(results, "vertex.get_missing") == (
        "NotFound",
        f'404 PipelineJob "{JOB}tiny-none" does not exist',
    )
    kind, message = error(results, "vertex.create_bad_id")
    assert (kind, "does not match ^[a-z][-a-z0-9]{0,127}$") == ("InvalidArgument", message[-38:])
    assert "'Tiny_2'" in message
    kind, message = error(results, "vertex.create_missing_param")
    assert (kind, "the required parameter 'day' has no value") == ("InvalidArgument", message[-41:])
    assert "'n' is 2.5, not a NUMBER_INTEGER" in error(results, "vertex.create_wrong_type")[1]
    kind, message = error(results, "vertex.unfaked")
    assert kind == "FakeCloudError"
    assert "ListPipelineJobs" in message


def test_pipeline_job_transient_failure_and_failed_job(run):
    results, _ = run
    # the async hook sees poll 1, then the scripted 503 of poll 2
    assert value(results, "vertex.flaky_get_1") == "PIPELINE_STATE_RUNNING"
    assert error(results, "vertex.flaky_get_2")[0] == "ServiceUnavailable"
    # the trigger's poll 3 fails too: its error event fails the task; the retry's poll 4 is done
    (event,) = value(results, "vertex.flaky_trigger")
    assert event == {
        "status": "error",
        "message": f"503 scripted transient failure: poll 3 of {JOB}tiny-flaky-1",
    }
    (event,) = value(results, "vertex.flaky_trigger_retry")
    assert event["status"] == "success"
    (event,) = value(results, "vertex.doomed_trigger")
    assert event["status"] == "error"
    assert event["job"]["state"] == 5  # PIPELINE_STATE_FAILED, as the provider serializes it
    assert event["job"]["error"]["message"] == "step train failed"


def test_pipeline_job_cancel(run):
    results, state = run
    assert value(results, "vertex.cancel") == "PIPELINE_STATE_CANCELLED"
    kind, message = error(results, "vertex.cancel_again")
    assert kind == "FailedPrecondition"
    assert "already PIPELINE_STATE_CANCELLED" in message
    methods = [r["method"] for r in calls(state, "cancel_pipeline_job")]
    assert methods == [
        "PipelineServiceClient.cancel_pipeline_job",
        "PipelineServiceAsyncClient.cancel_pipeline_job",
    ]


def test_batch_lives_by_the_script(run):
    results, state = run
    assert value(results, "dataproc.create") == {
        "batch": BATCH + "score-1",
        "operation": value(results, "dataproc.create")["operation"],
    }
    assert value(results, "dataproc.create")["operation"].startswith(
        f"projects/{PROJECT}/regions/{REGION}/operations/"
    )
    assert value(results, "dataproc.get_1") == "RUNNING"
    (event,) = value(results, "dataproc.trigger")
    assert event == {"batch_id": "score-1", "batch_state": "SUCCEEDED", "batch_state_message": ""}
    create = calls(state, "create_batch")[0]
    assert create["request"]["parent"] == f"projects/{PROJECT}/regions/{REGION}"
    assert create["request"]["batch_id"] == "score-1"
    assert create["request"]["batch"]["pyspark_batch"]["args"] == ["--day", "2026-11-29"]
    # the DataprocHook waits on the operation: its refreshes are polls too
    assert value(results, "dataproc.operation_wait") == "SUCCEEDED"
    stored = fake_cloud_state.resources(state, "batches")[BATCH + "score-wait"]
    assert [h["state"] for h in stored["state_history"]] == ["PENDING", "RUNNING"]
    assert stored["creator"] == EMAIL


def test_batch_errors_and_delete(run):
    results, state = run
    assert error(results, "dataproc.create_again")[0] == "AlreadyExists"
    assert error(results, "dataproc.get_missing") == (
        "NotFound",
        f'404 Batch "{BATCH}score-none" does not exist',
    )
    kind, message = error(results, "dataproc.create_bad_id")
    assert kind == "InvalidArgument"
    assert "'ab' does not match" in message
    assert error(results, "dataproc.create_unknown_field") == (
        "ValueError",
        "Unknown field for PySparkBatch: main_file",
    )
    kind, message = error(results, "dataproc.create_no_main")
    assert (kind, message) == (
        "InvalidArgument",
        "400 Batch: pyspark_batch.main_python_file_uri is required",
    )
    assert error(results, "dataproc.delete") == (
        "NotFound",
        f'404 Batch "{BATCH}score-1" does not exist',
    )
    assert BATCH + "score-1" not in fake_cloud_state.resources(state, "batches")


def test_batch_cancel_through_its_create_operation(run):
    results, state = run
    assert value(results, "dataproc.cancel") == "CANCELLED"
    (call,) = calls(state, "cancel_operation")
    stored = fake_cloud_state.resources(state, "batches")[BATCH + "score-cancel"]
    assert call["request"] == {"name": stored["operation"]}
    assert stored["state_message"] == "cancelled by the user"


def test_batch_transient_failure(run):
    results, _ = run
    assert error(results, "dataproc.flaky_get_1")[0] == "ServiceUnavailable"  # poll 1
    assert value(results, "dataproc.flaky_get_2") == "SUCCEEDED"  # poll 2 of 2
    (event,) = value(results, "dataproc.flaky_trigger")
    assert event["batch_state"] == "SUCCEEDED"


def test_on_success_runs_once_per_succeeded_job(run, gcs):
    _, state = run
    events = fake_cloud_state.events(state)
    finished = sorted(e["name"].rsplit("/", 1)[-1] for e in events)
    assert finished == ["flaky-1", "score-1", "score-wait", "tiny-1", "tiny-flaky-1"]
    assert {e["outcome"] for e in events} == {"done"}
    records = fake_cloud_state.records(state, "pipeline_jobs")
    assert records[JOB + "tiny-doomed-1"]["outputs"] is None
    written = sorted(b.name for b in gcs[1].list_blobs(BUCKET, prefix="outputs/"))
    assert written == [
        "outputs/batches/flaky-1.json",
        "outputs/batches/score-1.json",
        "outputs/batches/score-wait.json",
        "outputs/pipeline_jobs/tiny-1.json",
        "outputs/pipeline_jobs/tiny-flaky-1.json",
    ]
    output = json.loads(
        gcs[1].bucket(BUCKET).blob("outputs/pipeline_jobs/tiny-1.json").download_as_text()
    )
    assert output["state"] == "PIPELINE_STATE_SUCCEEDED"


def test_bigquery_answers_and_records_queries(run):
    results, state = run
    assert value(results, "bigquery.count") == [[7]]
    assert value(results, "bigquery.other") == [[0]]
    kind, message = error(results, "bigquery.unanswered")
    assert kind == "FakeCloudError"
    assert "SELECT 1 FROM `p.d.nothing`" in message
    kind, message = error(results, "bigquery.missing_param")
    assert (kind, "Query parameter 'day' not found") == ("BadRequest", message[4:35])
    first = calls(state, "Client.query")[0]
    assert first["request"]["parameters"] == {"pipeline_id": "20261129", "day": "2026-11-29"}
    assert first["request"]["job_config"]["query"]["useLegacySql"] is False
    assert first["request"]["project"] == PROJECT


def test_requests_log_every_call_in_order(run):
    results, state = run
    log = fake_cloud_state.requests(state)
    assert {r["pid"] for r in log} == {log[0]["pid"]}  # the driver's process
    assert [r["time"] for r in log] == sorted(r["time"] for r in log)
    unfaked = [r for r in log if r["method"].startswith("UNFAKED")]
    assert [r["request"]["call"] for r in unfaked] == [
        "/google.cloud.aiplatform.v1.PipelineService/ListPipelineJobs"
    ]
    print(f"driver: {value(results, 'seconds'):.1f}s, wall {value(results, 'wall_seconds'):.1f}s")


def test_script_and_answers_are_checked_up_front(tmp_path):
    with pytest.raises(fake_cloud_state.FakeCloudError, match="unknown keys"):
        fake_cloud_state.prepare(tmp_path, {"batches": {"poll_until_done": 2}}, [])
    with pytest.raises(fake_cloud_state.FakeCloudError, match="final_state"):
        fake_cloud_state.prepare(tmp_path, {"batches": {"final_state": "DONE"}}, [])
    with pytest.raises(fake_cloud_state.FakeCloudError, match="contains"):
        fake_cloud_state.prepare(tmp_path, {}, [{"rows": [[1]]}])
    with pytest.raises(SyntaxError):
        fake_cloud_state.prepare(tmp_path, {}, [], "def on_success(:\n")
    script = {
        "batches": {
            "polls_until_done": 4,
            "by_id_prefix": {"a-": {"fail_polls": [1]}, "a-b": {"final_state": "FAILED"}},
        }
    }
    fake = fake_cloud_state.fake
    assert fake.job_script(script, "batches", "a-b-1") == {
        "polls_until_done": 4,
        "final_state": "FAILED",
        "fail_polls": [],
        "error_message": "scripted failure",
    }
    assert fake.job_script(script, "batches", "a-c")["fail_polls"] == [1]


# --- The state engine, without clients ---------------------------------------------------


def poll_batch(name: str, times: int) -> None:
    fake = fake_cloud_state.fake
    for _ in range(times):
        fake._call(
            "test.poll",
            {"name": name},
            lambda locked, note: fake._poll(locked, "batches", name, note),
        )


def add_batch(state: Path, name: str) -> None:
    resource = {"name": name, "state": "PENDING", "create_time": "2026-11-29T00:00:00Z"}
    (state / "batches.json").write_text(
        json.dumps({name: {"resource": resource, "polls": 0, "outputs": None}})
    )


COUNT_OUTPUTS = """
import os

def on_success(kind, resource, state_dir):
    with open(os.path.join(state_dir, "outputs.log"), "a") as f:
        f.write(f"{os.getpid()} {resource['state']}\\n")
"""


def test_polls_from_many_processes_are_counted_once_each(tmp_path, monkeypatch):
    import multiprocessing

    state = fake_cloud_state.prepare(
        tmp_path, {"batches": {"polls_until_done": 30}}, [], COUNT_OUTPUTS
    )
    name = BATCH + "b-1"
    add_batch(state, name)
    monkeypatch.setenv("FAKE_CLOUD_DIR", str(state))
    fork = multiprocessing.get_context("fork")
    workers = [fork.Process(target=poll_batch, args=(name, 10)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    log = fake_cloud_state.requests(state)
    assert sorted(r["poll"] for r in log) == list(range(1, 41))
    assert len({r["pid"] for r in log}) == 4
    by_poll = {r["poll"]: r["state"] for r in log}
    assert {by_poll[n] for n in range(1, 30)} == {"RUNNING"}
    assert {by_poll[n] for n in range(30, 41)} == {"SUCCEEDED"}
    (record,) = fake_cloud_state.records(state, "batches").values()
    assert (record["polls"], record["outputs"]) == (40, "done")
    outputs = (state / "outputs.log").read_text().splitlines()
    assert len(outputs) == 1
    assert outputs[0].endswith(" SUCCEEDED")  # the job as it is about to be answered


def test_a_failing_on_success_fails_the_job_once(tmp_path, monkeypatch):
    state = fake_cloud_state.prepare(
        tmp_path, {}, [], "def on_success(kind, resource, state_dir):\n    1 / 0\n"
    )
    name = BATCH + "b-2"
    add_batch(state, name)
    monkeypatch.setenv("FAKE_CLOUD_DIR", str(state))
    poll_batch(name, 2)
    resource = fake_cloud_state.resources(state, "batches")[name]
    assert resource["state"] == "FAILED"
    assert "ZeroDivisionError" in resource["state_message"]
    assert [h["state"] for h in resource["state_history"]] == ["PENDING"]
    (event,) = fake_cloud_state.events(state)
    assert event["outcome"] == "failed"
    assert [r["state"] for r in fake_cloud_state.requests(state)] == ["FAILED", "FAILED"]
