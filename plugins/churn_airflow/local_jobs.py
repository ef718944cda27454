"""Local stand-ins for Dataproc batches and Vertex AI pipeline jobs: detached processes.

``submit`` starts ``python -m churn_airflow.local_jobs <job folder>`` in a session of its own
and returns at once, as the cloud APIs do; ``state`` reads what a sensor or operator polls.
A job folder (``<root>/batches/<id>`` or ``<root>/pipeline-jobs/<id>``) keeps the request, the
state, the process and the log. A job whose process is gone without an end state has failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

PENDING, RUNNING, SUCCEEDED, FAILED = "PENDING", "RUNNING", "SUCCEEDED", "FAILED"
ENDED = (SUCCEEDED, FAILED)
BATCH, PIPELINE = "batches", "pipeline-jobs"
LOG = "driver.log"


def job_dir(root: str, kind: str, job_id: str) -> Path:
    if kind not in (BATCH, PIPELINE):
        raise ValueError(f"unknown local job kind {kind!r}")
    return Path(root.removeprefix("file://")) / kind / job_id


def _write(folder: Path, name: str, doc: dict) -> None:
    staged = folder / f"{name}.tmp"
    staged.write_text(json.dumps(doc))
    staged.replace(folder / name)


def _write_state(folder: Path, state: str, **details) -> None:
    _write(folder, "state.json", {"state": state, **details})


def _alive(folder: Path) -> bool:
    """Whether the job's process still runs (a zombie or a recycled pid does not count)."""
    try:
        started = json.loads((folder / "process.json").read_text())
        process = psutil.Process(started["pid"])
        return (
            abs(process.create_time() - started["created"]) < 1
            and process.status() != psutil.STATUS_ZOMBIE
        )
    except FileNotFoundError:
        return True  # submit has not recorded the process yet
    except psutil.Error:
        return False


def state(folder: Path) -> dict:
    """The job's state; raises LookupError when there is no such job."""
    path = folder / "state.json"
    if not path.exists():
        raise LookupError(f"no local job {folder.name} under {folder.parent}")
    current = json.loads(path.read_text())
    if current["state"] not in ENDED and not _alive(folder):
        current = json.loads(path.read_text())  # it may have ended meanwhile
        if current["state"] not in ENDED:
            return {"state": FAILED, "message": f"the process of {folder.name} died; see {LOG}"}
    return current


def submit(folder: Path, request: dict) -> dict:
    """Start the job unless this id exists already (then report it, as the cloud APIs do)."""
    try:
        folder.mkdir(parents=True)
    except FileExistsError:
        return {**state(folder), "attached": True}
    (folder / "request.json").write_text(json.dumps(request, indent=2))
    _write_state(folder, PENDING)
    with open(folder / LOG, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "churn_airflow.local_jobs", str(folder)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    created = psutil.Process(process.pid).create_time()
    _write(folder, "process.json", {"pid": process.pid, "created": created})
    return {"state": PENDING, "attached": False}


def read_request(folder: Path) -> dict:
    """What the job was submitted with."""
    return json.loads((folder / "request.json").read_text())


def cancel(folder: Path) -> None:
    """Stop the job's whole process group, and record that it was cancelled."""
    with contextlib.suppress(FileNotFoundError, ProcessLookupError, KeyError):
        if state(folder)["state"] not in ENDED and _alive(folder):
            pid = json.loads((folder / "process.json").read_text())["pid"]
            os.killpg(pid, signal.SIGTERM)
            _write_state(folder, FAILED, message="cancelled")


def _run_batch(folder: Path, request: dict) -> dict:
    from pipeline.components import spark_submit

    spent = spark_submit(request, folder.name)
    spent.pop("batch_id")
    return {"usage": spent}


def _run_pipeline(folder: Path, request: dict) -> dict:
    from pipeline.run_local import run_values

    values = request["parameter_values"]
    return {"summary": run_values(values, Path(values["artifact_root"]) / "kfp")}


RUNNERS = {BATCH: _run_batch, PIPELINE: _run_pipeline}


def run(folder: Path) -> None:
    """Body of the detached process: run the job, then record how it ended."""
    submitted = read_request(folder)
    _write_state(folder, RUNNING)
    try:
        result = RUNNERS[folder.parent.name](folder, submitted)
    except Exception as err:  # recorded for whoever polls, which fails its task with it
        _write_state(folder, FAILED, message=str(err)[-2000:])
        raise
    _write_state(folder, SUCCEEDED, **result)


if __name__ == "__main__":
    run(Path(sys.argv[1]))
