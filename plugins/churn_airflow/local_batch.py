"""Local stand-in for a Dataproc batch: a detached spark-submit with a state file.

``submit`` starts ``python -m churn_airflow.local_batch run <batch dir>`` in its own session
and returns at once, as ``DataprocCreateBatchOperator(asynchronous=True)`` does; ``state``
reads what the sensor polls. The batch folder keeps the request, the state and the log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PENDING, RUNNING, SUCCEEDED, FAILED = "PENDING", "RUNNING", "SUCCEEDED", "FAILED"


def batch_dir(root: str, batch_id: str) -> Path:
    return Path(root.removeprefix("file://")) / "batches" / batch_id


def _write_state(folder: Path, state: str, **details) -> None:
    staged = folder / "state.json.tmp"
    staged.write_text(json.dumps({"state": state, **details}))
    staged.replace(folder / "state.json")


def state(root: str, batch_id: str) -> dict:
    path = batch_dir(root, batch_id) / "state.json"
    if not path.exists():
        raise LookupError(f"no local batch {batch_id} under {root}")
    return json.loads(path.read_text())


def submit(root: str, batch_id: str, batch: dict) -> dict:
    """Start the batch unless this id already exists (then report it, as Dataproc would)."""
    folder = batch_dir(root, batch_id)
    try:
        folder.mkdir(parents=True)
    except FileExistsError:
        return {"batch_id": batch_id, **state(root, batch_id), "attached": True}
    (folder / "batch.json").write_text(json.dumps(batch, indent=2))
    _write_state(folder, PENDING)
    with open(folder / "driver.log", "w") as log:
        subprocess.Popen(
            [sys.executable, "-m", "churn_airflow.local_batch", str(folder)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
    return {"batch_id": batch_id, "state": PENDING, "attached": False}


def run(folder: Path) -> None:
    """Body of the detached process: run the batch, then record how it ended."""
    from pipeline.components import spark_submit

    batch = json.loads((folder / "batch.json").read_text())
    job = batch["pyspark_batch"]
    _write_state(folder, RUNNING)
    try:
        seconds = spark_submit(
            job["main_python_file_uri"],
            job.get("python_file_uris", []),
            job.get("args", []),
            folder.name,
            batch.get("runtime_config", {}).get("properties", {}),
        )
    except Exception as err:  # recorded for the sensor, which fails the task with it
        _write_state(folder, FAILED, message=str(err)[-2000:])
        raise
    _write_state(folder, SUCCEEDED, seconds=round(seconds, 1))


if __name__ == "__main__":
    run(Path(sys.argv[1]))
