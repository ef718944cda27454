"""The local stand-in for Dataproc batches: real detached spark-submit runs of tiny scripts.

spark-submit runs a plain .py file (no SparkSession in it), so a batch costs one JVM start.
The successful and the failing batch start together and are shared by the tests below.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from unittest import mock

import pytest
from airflow.sdk.exceptions import AirflowException

from churn_airflow import local_batch
from churn_airflow.local_operators import LocalBatchOperator, LocalBatchSensor

TIMEOUT = 120
SCRIPT = """
import sys
with open(sys.argv[1], "a") as f:
    f.write("ran " + " ".join(sys.argv[2:]) + "\\n")
sys.exit(int(sys.argv[2]))
"""


def batch_request(script: Path, out: Path, exit_code: int) -> dict:
    return {
        "pyspark_batch": {
            "main_python_file_uri": f"file://{script}",
            "python_file_uris": [],
            "args": [str(out), exit_code],
        },
        "runtime_config": {"version": "3.0", "properties": {"spark.ui.enabled": "false"}},
        "labels": {"app": "customer-churn", "pipeline-id": "t1"},
    }


def wait_until_done(root: str, batch_id: str) -> dict:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        current = local_batch.state(root, batch_id)
        if current["state"] in (local_batch.SUCCEEDED, local_batch.FAILED):
            return current
        time.sleep(0.5)
    log = (local_batch.batch_dir(root, batch_id) / "driver.log").read_text()
    pytest.fail(f"batch {batch_id} still {current['state']} after {TIMEOUT} s:\n{log[-3000:]}")


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
        task_id="submit_scoring", batch=b.ok, pipeline_id="t1", step="scoring", root=b.root
    )
    b.submitted["ok"] = operator.execute({"ti": mock.MagicMock(try_number=1)})
    b.submitted["bad"] = local_batch.submit(b.root, "churn-scoring-t1-bad", b.bad)
    # at once, while the first process is still starting: attach, no second run
    b.resubmitted["ok"] = local_batch.submit(b.root, "churn-scoring-t1", b.ok)
    b.final["ok"] = wait_until_done(b.root, "churn-scoring-t1")
    b.final["bad"] = wait_until_done(b.root, "churn-scoring-t1-bad")
    return b


def test_submit_returns_at_once(batches):
    assert batches.submitted["ok"] == {"batch_id": "churn-scoring-t1", "state": "PENDING"}
    assert batches.submitted["bad"] == {
        "batch_id": "churn-scoring-t1-bad",
        "state": "PENDING",
        "attached": False,
    }


def test_a_successful_batch_ends_succeeded(batches):
    final = batches.final["ok"]
    assert final["state"] == local_batch.SUCCEEDED
    assert isinstance(final["seconds"], float) and final["seconds"] > 0
    assert batches.ok_out.read_text() == "ran 0\n"  # ran exactly once


def test_the_batch_folder_keeps_request_state_and_log(batches):
    folder = local_batch.batch_dir(batches.root, "churn-scoring-t1")
    assert folder == Path(batches.root) / "batches" / "churn-scoring-t1"
    assert json.loads((folder / "batch.json").read_text()) == json.loads(json.dumps(batches.ok))
    assert sorted(p.name for p in folder.iterdir()) == ["batch.json", "driver.log", "state.json"]
    log = (folder / "driver.log").read_text()
    assert "batch churn-scoring-t1:" in log
    assert "--conf spark.ui.enabled=false" in log
    assert f"{batches.script} {batches.ok_out} 0" in log


def test_a_failing_batch_ends_failed_with_its_exit_code(batches):
    final = batches.final["bad"]
    assert final["state"] == local_batch.FAILED
    assert "Spark batch churn-scoring-t1-bad failed with exit code 3" in final["message"]
    assert batches.bad_out.read_text() == "ran 3\n"


def test_submitting_a_running_id_again_attaches(batches):
    again = batches.resubmitted["ok"]
    assert again["attached"] is True
    assert again["batch_id"] == "churn-scoring-t1"
    assert again["state"] in (local_batch.PENDING, local_batch.RUNNING)
    assert batches.ok_out.read_text() == "ran 0\n"


def test_submitting_a_finished_id_again_attaches_without_a_process(batches):
    with mock.patch.object(local_batch.subprocess, "Popen") as popen:
        again = local_batch.submit(batches.root, "churn-scoring-t1-bad", batches.ok)
    popen.assert_not_called()
    assert again["attached"] is True
    assert again["state"] == local_batch.FAILED
    assert "exit code 3" in again["message"]
    # the stored request is still the original one
    folder = local_batch.batch_dir(batches.root, "churn-scoring-t1-bad")
    assert json.loads((folder / "batch.json").read_text())["pyspark_batch"]["args"][1] == 3


def test_sensor_on_the_real_batches(batches):
    ok = LocalBatchSensor(task_id="wait", batch_id="churn-scoring-t1", root=batches.root)
    assert ok.poke({}) is True
    bad = LocalBatchSensor(task_id="wait", batch_id="churn-scoring-t1-bad", root=batches.root)
    with pytest.raises(AirflowException, match=r"Batch churn-scoring-t1-bad failed: .*exit code 3"):
        bad.poke({})


# --- state files written by hand: no processes ----------------------------------------------------


def fake_batch(root: Path, batch_id: str, state: str, **details) -> None:
    folder = local_batch.batch_dir(str(root), batch_id)
    folder.mkdir(parents=True)
    local_batch._write_state(folder, state, **details)


def test_state_of_an_unknown_batch(tmp_path):
    with pytest.raises(LookupError, match=f"no local batch nope under {tmp_path}"):
        local_batch.state(str(tmp_path), "nope")


def test_batch_dir_accepts_a_file_uri(tmp_path):
    assert local_batch.batch_dir(f"file://{tmp_path}", "b1") == tmp_path / "batches" / "b1"


@pytest.mark.parametrize(
    ("state", "done"),
    [(local_batch.PENDING, False), (local_batch.RUNNING, False), (local_batch.SUCCEEDED, True)],
)
def test_sensor_pokes(tmp_path, state, done):
    fake_batch(tmp_path, "b1", state)
    sensor = LocalBatchSensor(task_id="wait", batch_id="b1", root=str(tmp_path))
    assert sensor.poke({}) is done


def test_sensor_fails_with_the_batch_message(tmp_path):
    fake_batch(tmp_path, "b1", local_batch.FAILED, message="boom: exit code 3")
    sensor = LocalBatchSensor(task_id="wait", batch_id="b1", root=str(tmp_path))
    with pytest.raises(AirflowException, match="Batch b1 failed: boom: exit code 3"):
        sensor.poke({})


def test_sensor_of_a_missing_batch_fails(tmp_path):
    sensor = LocalBatchSensor(task_id="wait", batch_id="b1", root=str(tmp_path))
    with pytest.raises(LookupError):
        sensor.poke({})


def test_operator_and_sensor_default_to_the_churn_root(tmp_path, monkeypatch):
    monkeypatch.setenv("CHURN_ROOT", str(tmp_path))
    op = LocalBatchOperator(task_id="s", batch={}, pipeline_id="t1", step="scoring")
    sensor = LocalBatchSensor(task_id="w", batch_id="b1")
    assert op.root == sensor.root == str(tmp_path.resolve())


def operator(root: Path) -> LocalBatchOperator:
    return LocalBatchOperator(
        task_id="submit_scoring",
        batch={"pyspark_batch": {"main_python_file_uri": "/x.py"}},
        pipeline_id="20261129",
        step="scoring",
        root=str(root),
    )


def test_operator_retry_reuses_an_earlier_successful_batch(tmp_path):
    fake_batch(tmp_path, "churn-scoring-20261129", local_batch.SUCCEEDED, seconds=1.0)
    with mock.patch.object(local_batch.subprocess, "Popen") as popen:
        result = operator(tmp_path).execute({"ti": mock.MagicMock(try_number=2)})
    assert result == {"batch_id": "churn-scoring-20261129", "state": "SUCCEEDED"}
    popen.assert_not_called()
    assert sorted(p.name for p in (tmp_path / "batches").iterdir()) == ["churn-scoring-20261129"]


def test_operator_third_try_reuses_the_second_attempt(tmp_path):
    fake_batch(tmp_path, "churn-scoring-20261129", local_batch.FAILED, message="x")
    fake_batch(tmp_path, "churn-scoring-20261129-r2", local_batch.SUCCEEDED, seconds=1.0)
    with mock.patch.object(local_batch.subprocess, "Popen") as popen:
        result = operator(tmp_path).execute({"ti": mock.MagicMock(try_number=3)})
    assert result == {"batch_id": "churn-scoring-20261129-r2", "state": "SUCCEEDED"}
    popen.assert_not_called()


@pytest.mark.parametrize("earlier", ["failed", "missing"])
def test_operator_retry_after_a_failure_starts_a_new_batch(tmp_path, earlier):
    if earlier == "failed":
        fake_batch(tmp_path, "churn-scoring-20261129", local_batch.FAILED, message="x")
    with mock.patch.object(local_batch.subprocess, "Popen") as popen:
        result = operator(tmp_path).execute({"ti": mock.MagicMock(try_number=2)})
    assert result == {"batch_id": "churn-scoring-20261129-r2", "state": "PENDING"}
    popen.assert_called_once()
    command = popen.call_args.args[0]
    folder = tmp_path / "batches" / "churn-scoring-20261129-r2"
    assert command[1:] == ["-m", "churn_airflow.local_batch", str(folder)]
    assert popen.call_args.kwargs["start_new_session"] is True
    assert local_batch.state(str(tmp_path), "churn-scoring-20261129-r2") == {"state": "PENDING"}
