"""The local stand-ins for Dataproc batches and Vertex pipeline jobs: real detached processes.

spark-submit runs a plain .py file (no SparkSession in it), so a batch costs one JVM start.
The successful and the failing batch start together and are shared by the tests below.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from pathlib import Path
from unittest import mock

import pytest
from airflow.sdk.exceptions import AirflowException

from churn_airflow import local_jobs, local_operators
from churn_airflow.local_operators import (
    LocalBatchOperator,
    LocalBatchSensor,
    LocalPipelineOperator,
)
from churn_airflow.run_ids import JOB_ID_KEY, RUN_VALUES_KEY
from churn_core import stages
from churn_core.pipeline_params import Environment, parameter_values
from tests.plugins.task_instances import task_instance

TIMEOUT = 120
SCRIPT = """
import sys, time
with open(sys.argv[1], "a") as f:
    f.write("ran " + " ".join(sys.argv[2:4]) + "\\n")
time.sleep(float(sys.argv[3]) if len(sys.argv) > 3 else 0)
sys.exit(int(sys.argv[2]))
"""
RUN_KEY = "k7f2q"
MODEL_VERSION = "20261128-training-abcde-1"
SCORING_PARAMS = {"drift_warning": 0.1, "drift_alert": 0.25, "max_reject_fraction": 0.05}


def batch_request(script: Path, out: Path, exit_code: int, sleep: float = 0) -> dict:
    return {
        "pyspark_batch": {
            "main_python_file_uri": f"file://{script}",
            "python_file_uris": [],
            "args": [str(out), exit_code, sleep, "--model-version", MODEL_VERSION],
        },
        "runtime_config": {"version": "3.0", "properties": {"spark.ui.enabled": "false"}},
        "labels": {"app": "customer-churn", "pipeline-id": "t1"},
    }


def batch_dir(root, batch_id: str) -> Path:
    return local_jobs.job_dir(str(root), local_jobs.BATCH, batch_id)


def wait_until_done(folder: Path) -> dict:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        current = local_jobs.state(folder)
        if current["state"] in local_jobs.ENDED:
            return current
        time.sleep(0.5)
    log = (folder / local_jobs.LOG).read_text()
    pytest.fail(f"job {folder.name} still {current['state']} after {TIMEOUT} s:\n{log[-3000:]}")


def ti(try_number: int = 1, max_tries: int = 1) -> mock.MagicMock:
    """A task instance; the operators here have 0 retries unless a test says otherwise."""
    return task_instance(try_number, max_tries)


def scoring_context(try_number: int = 1, max_tries: int = 1) -> dict:
    return {"ti": ti(try_number, max_tries), "params": SCORING_PARAMS}


def plan(pipeline_id: str, run_key: str = RUN_KEY) -> dict:
    return {"pipeline_id": pipeline_id, "run_key": run_key, "day": "2026-11-29"}


def building(batch: dict):
    """The registry's champion of the moment, as the batch ``champion_batch`` builds."""
    return mock.patch.object(
        local_operators.scoring, "champion_batch", side_effect=lambda *_: batch
    )


OK_ID = f"churn-scoring-t1-{RUN_KEY}-1"
BAD_ID = "churn-scoring-t1-bad"


class Batches:
    def __init__(self, root: Path):
        self.root = str(root)
        self.script = root / "job.py"
        self.script.write_text(SCRIPT)
        self.ok_out, self.bad_out = root / "ok.txt", root / "bad.txt"
        self.ok = batch_request(self.script, self.ok_out, 0)
        self.bad = batch_request(self.script, self.bad_out, 3)
        self.submitted: dict[str, dict] = {}
        self.resubmitted: dict[str, dict] = {}
        self.final: dict[str, dict] = {}


@pytest.fixture(scope="module")
def batches(tmp_path_factory) -> Batches:
    b = Batches(tmp_path_factory.mktemp("local-batches"))
    # the operator submits the good one (first try), submit() the failing one
    operator = LocalBatchOperator(
        task_id="submit_scoring", plan=plan("t1"), stage=stages.SCORING, root=b.root
    )
    with building(b.ok):
        b.submitted["ok"] = operator.execute(scoring_context(1, 0))
    b.submitted["bad"] = local_jobs.submit(batch_dir(b.root, BAD_ID), b.bad)
    # at once, while the first process is still starting: attach, no second run
    b.resubmitted["ok"] = local_jobs.submit(batch_dir(b.root, OK_ID), b.ok)
    b.final["ok"] = wait_until_done(batch_dir(b.root, OK_ID))
    b.final["bad"] = wait_until_done(batch_dir(b.root, BAD_ID))
    return b


def test_submit_returns_at_once(batches):
    assert batches.submitted["ok"] == {
        "batch_id": OK_ID,
        "state": "PENDING",
        "model_version": MODEL_VERSION,
    }
    assert batches.submitted["bad"] == {"state": "PENDING", "attached": False}


def test_a_successful_batch_ends_succeeded(batches):
    final = batches.final["ok"]
    assert final["state"] == local_jobs.SUCCEEDED
    assert final["usage"]["wall_seconds"] > 0 and final["usage"]["cpu_seconds"] > 0
    assert batches.ok_out.read_text() == "ran 0 0\n"  # ran exactly once


def test_the_batch_folder_keeps_request_state_process_and_log(batches):
    folder = batch_dir(batches.root, OK_ID)
    assert folder == Path(batches.root) / "batches" / OK_ID
    assert json.loads((folder / "request.json").read_text()) == json.loads(json.dumps(batches.ok))
    assert sorted(p.name for p in folder.iterdir()) == [
        "driver.log",
        "process.json",
        "request.json",
        "state.json",
    ]
    log = (folder / "driver.log").read_text()
    assert f"batch {OK_ID}:" in log
    assert "--conf spark.ui.enabled=false" in log
    assert f"{batches.script} {batches.ok_out} 0" in log


def test_a_failing_batch_ends_failed_with_its_exit_code(batches):
    final = batches.final["bad"]
    assert final["state"] == local_jobs.FAILED
    assert f"Spark batch {BAD_ID} failed with exit code 3" in final["message"]
    assert batches.bad_out.read_text() == "ran 3 0\n"


def test_submitting_a_running_id_again_attaches(batches):
    again = batches.resubmitted["ok"]
    assert again["attached"] is True
    assert again["state"] in (local_jobs.PENDING, local_jobs.RUNNING)
    assert batches.ok_out.read_text() == "ran 0 0\n"


def test_submitting_a_finished_id_again_attaches_without_a_process(batches):
    with mock.patch.object(local_jobs.subprocess, "Popen") as popen:
        again = local_jobs.submit(batch_dir(batches.root, BAD_ID), batches.ok)
    popen.assert_not_called()
    assert again["attached"] is True
    assert again["state"] == local_jobs.FAILED
    assert "exit code 3" in again["message"]
    # the stored request is still the original one
    request = json.loads((batch_dir(batches.root, BAD_ID) / "request.json").read_text())
    assert request["pyspark_batch"]["args"][1] == 3


def test_sensor_on_the_real_batches(batches):
    ok = LocalBatchSensor(task_id="wait", batch_id=OK_ID, root=batches.root)
    assert ok.poke({}) is True
    bad = LocalBatchSensor(task_id="wait", batch_id=BAD_ID, root=batches.root)
    with pytest.raises(
        AirflowException,
        match=rf"Batch {BAD_ID} failed \(log: .*/{BAD_ID}/driver.log\): .*exit code 3",
    ):
        bad.poke({})


def test_cancel_stops_the_whole_process_group(tmp_path):
    """spark-submit, its JVM and the Python driver all go: the job cannot write on."""
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    folder = batch_dir(tmp_path, "churn-scoring-slow")
    local_jobs.submit(folder, batch_request(script, tmp_path / "out.txt", 0, sleep=120))
    deadline = time.monotonic() + TIMEOUT
    while not (tmp_path / "out.txt").exists() and time.monotonic() < deadline:
        time.sleep(0.2)  # until the driver runs: the JVM and Python are up
    pid = json.loads((folder / "process.json").read_text())["pid"]
    local_jobs.cancel(folder)
    assert local_jobs.state(folder) == {"state": local_jobs.FAILED, "message": "cancelled"}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        group = [p for p in local_jobs.psutil.process_iter(["status"]) if in_group(p, pid)]
        if not group:
            return
        time.sleep(0.2)
    pytest.fail(f"the job's process group still runs after cancel: {group}")


def in_group(process, pgid: int) -> bool:
    """A live member of the process group (the job process itself stays a zombie: its parent,
    this test, does not reap it)."""
    try:
        return os.getpgid(process.pid) == pgid and process.info["status"] != "zombie"
    except ProcessLookupError:
        return False


# --- state files written by hand: no Spark -------------------------------------------------------


def fake_job(folder: Path, state: str, pid: int | None = None, **details) -> None:
    """A job folder as submit and the job process leave it; the process is ``pid`` (default:
    this test process, which is alive)."""
    folder.mkdir(parents=True)
    local_jobs._write_state(folder, state, **details)
    process = local_jobs.psutil.Process(pid or os.getpid())
    local_jobs._write(
        folder, "process.json", {"pid": process.pid, "created": process.create_time()}
    )


def fake_batch(root: Path, batch_id: str, state: str, **details) -> None:
    fake_job(batch_dir(root, batch_id), state, **details)
    request = {"pyspark_batch": {"args": ["--model-version", "v1"]}}
    (batch_dir(root, batch_id) / "request.json").write_text(json.dumps(request))


def test_state_of_an_unknown_job(tmp_path):
    with pytest.raises(LookupError, match=f"no local job nope under {tmp_path}/batches"):
        local_jobs.state(batch_dir(tmp_path, "nope"))


def test_job_dir_accepts_a_file_uri_and_knows_its_kinds(tmp_path):
    assert batch_dir(f"file://{tmp_path}", "b1") == tmp_path / "batches" / "b1"
    assert local_jobs.job_dir(str(tmp_path), local_jobs.PIPELINE, "j") == (
        tmp_path / "pipeline-jobs" / "j"
    )
    with pytest.raises(ValueError, match="unknown local job kind"):
        local_jobs.job_dir(str(tmp_path), "clusters", "j")


def test_a_running_job_whose_process_died_has_failed(tmp_path):
    """The job process was killed (no end state written): nobody waits on it for hours."""
    dead = local_jobs.subprocess.Popen(["true"])
    dead.wait()
    folder = batch_dir(tmp_path, "b1")
    folder.mkdir(parents=True)
    local_jobs._write_state(folder, local_jobs.RUNNING)
    local_jobs._write(folder, "process.json", {"pid": dead.pid, "created": time.time()})
    current = local_jobs.state(folder)
    assert current["state"] == local_jobs.FAILED
    assert "the process of b1 died" in current["message"]
    fake_batch(tmp_path, "b2", local_jobs.RUNNING)  # this process: alive
    assert local_jobs.state(batch_dir(tmp_path, "b2"))["state"] == local_jobs.RUNNING


@pytest.mark.parametrize(
    ("state", "done"),
    [(local_jobs.PENDING, False), (local_jobs.RUNNING, False), (local_jobs.SUCCEEDED, True)],
)
def test_sensor_pokes(tmp_path, state, done):
    fake_batch(tmp_path, "b1", state)
    sensor = LocalBatchSensor(task_id="wait", batch_id="b1", root=str(tmp_path))
    assert sensor.poke({}) is done


def test_sensor_fails_with_the_batch_message(tmp_path):
    fake_batch(tmp_path, "b1", local_jobs.FAILED, message="boom: exit code 3")
    sensor = LocalBatchSensor(task_id="wait", batch_id="b1", root=str(tmp_path))
    with pytest.raises(
        AirflowException, match=r"Batch b1 failed \(log: .*/b1/driver.log\): boom: exit code 3"
    ):
        sensor.poke({})


def test_sensor_of_a_missing_batch_fails(tmp_path):
    sensor = LocalBatchSensor(task_id="wait", batch_id="b1", root=str(tmp_path))
    with pytest.raises(LookupError):
        sensor.poke({})


def test_operators_and_sensor_default_to_the_churn_root(tmp_path, monkeypatch):
    monkeypatch.setenv("CHURN_ROOT", str(tmp_path))
    op = LocalBatchOperator(task_id="s", plan=plan("t1"), stage=stages.SCORING)
    pipeline = LocalPipelineOperator(task_id="p", parameter_values={}, run_key="k")
    sensor = LocalBatchSensor(task_id="w", batch_id="b1")
    assert op.root == pipeline.root == sensor.root == str(tmp_path.resolve())


# --- LocalBatchOperator: new work or a retry ----------------------------------------------------


NEW_BATCH = {"pyspark_batch": {"main_python_file_uri": "/x.py", "args": ["--model-version", "v2"]}}


def batch_operator(root: Path, run_key: str = RUN_KEY) -> LocalBatchOperator:
    return LocalBatchOperator(
        task_id="submit_scoring",
        plan=plan("20261129", run_key),
        stage=stages.SCORING,
        root=str(root),
        retries=1,
    )


def scoring_id(attempt: int, run_key: str = RUN_KEY) -> str:
    return f"churn-scoring-20261129-{run_key}-{attempt}"


@pytest.fixture
def popen():
    """Popen of the job process, not started; its pid is this (live) test process."""
    with mock.patch.object(local_jobs.subprocess, "Popen") as popen, building(NEW_BATCH):
        popen.return_value.pid = os.getpid()
        yield popen


@pytest.mark.parametrize("earlier", [local_jobs.SUCCEEDED, local_jobs.RUNNING])
def test_a_retry_waits_on_an_earlier_batch_that_runs_or_succeeded(tmp_path, popen, earlier):
    fake_batch(tmp_path, scoring_id(1), earlier)
    result = batch_operator(tmp_path).execute(scoring_context(2, max_tries=1))
    assert result == {"batch_id": scoring_id(1), "state": earlier, "model_version": "v1"}
    popen.assert_not_called()
    assert [p.name for p in (tmp_path / "batches").iterdir()] == [scoring_id(1)]


@pytest.mark.parametrize("earlier", ["failed", "died", "missing"])
def test_a_retry_after_a_failed_batch_starts_a_new_one(tmp_path, popen, earlier):
    if earlier == "failed":
        fake_batch(tmp_path, scoring_id(1), local_jobs.FAILED, message="x")
    elif earlier == "died":
        folder = batch_dir(tmp_path, scoring_id(1))
        folder.mkdir(parents=True)
        local_jobs._write_state(folder, local_jobs.RUNNING)
        local_jobs._write(folder, "process.json", {"pid": 2**22 + 1, "created": 0.0})
    result = batch_operator(tmp_path).execute(scoring_context(2, max_tries=1))
    assert result == {"batch_id": scoring_id(2), "state": "PENDING", "model_version": "v2"}
    popen.assert_called_once()
    folder = batch_dir(tmp_path, scoring_id(2))
    assert popen.call_args.args[0][1:] == ["-m", "churn_airflow.local_jobs", str(folder)]
    assert popen.call_args.kwargs["start_new_session"] is True
    assert local_jobs.state(folder) == {"state": "PENDING"}


def test_a_cleared_task_scores_again_even_after_a_success(tmp_path, popen):
    """A clear after try 1 sets max_tries = 1 + retries: try 2 is new work, not a retry."""
    fake_batch(tmp_path, scoring_id(1), local_jobs.SUCCEEDED)
    result = batch_operator(tmp_path).execute(scoring_context(2, max_tries=1 + 1))
    assert result == {"batch_id": scoring_id(2), "state": "PENDING", "model_version": "v2"}
    popen.assert_called_once()


def test_a_clear_cancels_the_batch_of_a_try_before_it_that_still_runs(tmp_path, popen):
    """One writer per partition: the old batch stops before the new one starts."""
    fake_batch(tmp_path, scoring_id(1), local_jobs.RUNNING)
    with mock.patch.object(local_jobs.os, "killpg") as killpg:
        result = batch_operator(tmp_path).execute(scoring_context(2, max_tries=1 + 1))
    killpg.assert_called_once_with(os.getpid(), local_jobs.signal.SIGTERM)
    assert local_jobs.state(batch_dir(tmp_path, scoring_id(1)))["message"] == "cancelled"
    assert result["batch_id"] == scoring_id(2)


def test_another_run_of_the_same_pipeline_id_gets_its_own_batch(tmp_path, popen):
    """The asset-triggered re-score of a day: same pipeline_id, another DAG run."""
    fake_batch(tmp_path, scoring_id(1), local_jobs.SUCCEEDED)
    result = batch_operator(tmp_path, run_key="zzzzz").execute(scoring_context(1, max_tries=1))
    assert result == {"batch_id": scoring_id(1, "zzzzz"), "state": "PENDING", "model_version": "v2"}
    popen.assert_called_once()


# --- LocalPipelineOperator ----------------------------------------------------------------------


def pipeline_operator(root: Path) -> LocalPipelineOperator:
    values = parameter_values(Environment.local(root), "20261129", dt.date(2026, 11, 29), "x-1")
    operator = LocalPipelineOperator(
        task_id="run_training_pipeline",
        parameter_values=values,
        run_key=RUN_KEY,
        root=str(root),
        retries=1,
    )
    operator.poll_seconds = 0.1
    return operator


def pipeline_dir(root: Path, attempt: int) -> Path:
    job = f"churn-training-20261129-{RUN_KEY}-{attempt}"
    return local_jobs.job_dir(str(root), local_jobs.PIPELINE, job)


def finish_later(folder: Path, state: str, **details) -> threading.Timer:
    timer = threading.Timer(0.5, local_jobs._write_state, (folder, state), details)
    timer.start()
    return timer


def test_a_pipeline_retry_attaches_to_the_running_job_and_returns_its_summary(tmp_path, popen):
    folder = pipeline_dir(tmp_path, 1)
    fake_job(folder, local_jobs.RUNNING)
    finish_later(folder, local_jobs.SUCCEEDED, summary={"training_au_pr": 0.6})
    task = ti(2, max_tries=1)
    assert pipeline_operator(tmp_path).execute({"ti": task}) == {"training_au_pr": 0.6}
    popen.assert_not_called()
    task.xcom_push.assert_any_call(key=JOB_ID_KEY, value=folder.name)
    pushed = {c.kwargs["key"]: c.kwargs["value"] for c in task.xcom_push.call_args_list}
    assert pushed[RUN_VALUES_KEY]["attempt"] == f"{RUN_KEY}-1"
    assert pushed[RUN_VALUES_KEY]["training_batch_id"] == f"churn-training-20261129-{RUN_KEY}-1"


def test_a_failed_pipeline_job_fails_the_task_with_its_message(tmp_path, popen):
    finish_later(pipeline_dir(tmp_path, 1), local_jobs.FAILED, message="Spark batch x failed")
    with pytest.raises(
        AirflowException,
        match=r"pipeline job .*-1 failed \(log: .*driver.log\): Spark batch x failed",
    ):
        pipeline_operator(tmp_path).execute({"ti": ti(1, max_tries=1)})
    request = json.loads((pipeline_dir(tmp_path, 1) / "request.json").read_text())
    assert request["parameter_values"]["attempt"] == f"{RUN_KEY}-1"


def test_killing_the_pipeline_task_cancels_the_job_it_attached_to(tmp_path, popen):
    """Airflow calls on_kill while execute waits: the re-attached job is cancelled."""
    folder = pipeline_dir(tmp_path, 1)
    fake_job(folder, local_jobs.RUNNING)
    operator = pipeline_operator(tmp_path)
    outcome = {}

    def run():
        try:
            operator.execute({"ti": ti(2, max_tries=1)})
        except AirflowException as err:
            outcome["error"] = str(err)

    waiting = threading.Thread(target=run)
    waiting.start()
    while operator.folder is None:
        time.sleep(0.05)
    with mock.patch.object(local_jobs.os, "killpg") as killpg:
        operator.on_kill()
    waiting.join(10)
    killpg.assert_called_once_with(os.getpid(), local_jobs.signal.SIGTERM)
    assert local_jobs.state(folder) == {"state": local_jobs.FAILED, "message": "cancelled"}
    assert outcome["error"].endswith("): cancelled")
