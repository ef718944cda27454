"""Operators of the local backend, shaped like the Google provider ones they stand in for.

Both submitters follow the cloud operators' rule (``run_ids.attempts``): the first try after a
clear is new work with a new job id; an automatic retry first looks for the job of an earlier
try that still runs or succeeded, and waits on it instead of running the work twice.
"""

from __future__ import annotations

import time
from pathlib import Path

from airflow.sdk import BaseOperator, BaseSensorOperator
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout

from churn_airflow import landing, lineage_parent, local_jobs, run_ids, scoring, settings
from churn_core import lineage, step_progress
from churn_core.stages import Stage


class LocalPathSensor(BaseSensorOperator):
    """Waits until a day's completion marker is under the local root (the GCS object sensor);
    a timeout says what the day's folder holds."""

    template_fields = ("marker", "root")

    def __init__(self, *, marker: str, root: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.marker = marker
        self.root = root or settings.local_root()

    def _path(self) -> Path:
        return Path(self.root.removeprefix("file://"), self.marker)

    def _missing(self) -> str:
        folder = self._path().parent
        landed = [p.name for p in folder.iterdir()] if folder.is_dir() else []
        return landing.incomplete(str(folder), landed, self._path().name)

    def poke(self, context) -> bool:
        found = self._path().is_file()
        self.log.info("%s", f"{self._path()}: the day is complete" if found else self._missing())
        return found

    def execute(self, context):
        try:
            return super().execute(context)
        except AirflowSensorTimeout as timeout:
            raise AirflowSensorTimeout(f"{self._missing()}; {timeout}") from None


def _reusable(folder: Path) -> dict | None:
    """The state of a job that runs or succeeded; None if it failed or never existed."""
    try:
        current = local_jobs.state(folder)
    except LookupError:
        return None
    return None if current["state"] == local_jobs.FAILED else current


class LocalPipelineOperator(BaseOperator):
    """Runs the training pipeline as a local job (kfp.local), with the values Vertex would get,
    and waits for it; killing the task cancels the job it waits on."""

    template_fields = ("parameter_values", "run_key", "root")
    poll_seconds = 5.0

    def __init__(self, *, parameter_values, run_key: str, root: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.parameter_values, self.run_key = parameter_values, run_key
        self.root = root or settings.local_root()
        self.folder: Path | None = None

    def _folder(self, attempt: str) -> Path:
        job = lineage.job_id(self.parameter_values["pipeline_id"], attempt)
        return local_jobs.job_dir(self.root, local_jobs.PIPELINE, job)

    def execute(self, context) -> dict:
        from churn_core.pipeline_params import for_attempt

        ti = context["ti"]
        earlier, current = run_ids.attempts(self.run_key, ti, self.retries)
        found = run_ids.first_reusable(earlier, lambda a: _reusable(self._folder(a)))
        attempt = found[0] if found else current
        self.folder = self._folder(attempt)
        values = for_attempt(
            lineage_parent.pipeline_values(self.parameter_values, context), attempt
        )
        if found:
            self.log.info(
                "pipeline job %s is %s: waiting on it", self.folder.name, found[1]["state"]
            )
        else:
            local_jobs.submit(self.folder, {"parameter_values": values})
        ti.xcom_push(key=run_ids.JOB_ID_KEY, value=self.folder.name)
        ti.xcom_push(key=run_ids.RUN_VALUES_KEY, value=values)
        self.log.info("pipeline job %s (log: %s)", self.folder.name, self.folder / local_jobs.LOG)
        final = self._wait()
        if final["state"] != local_jobs.SUCCEEDED:
            log = self.folder / local_jobs.LOG
            raise AirflowException(
                f"pipeline job {self.folder.name} failed (log: {log}): {final['message']}"
            )
        self.log.info("local pipeline finished: %s", final["summary"])
        return final["summary"]

    def _wait(self) -> dict:
        """Polls the job, logging each step as it starts and ends (``churn_core.step_progress``)."""
        started, steps = time.monotonic(), step_progress.Reader(self.folder / local_jobs.LOG)
        while True:
            current = local_jobs.state(self.folder)  # then the log: it holds the end's lines
            for step in steps.new():
                self.log.info("step %s", step)
            if current["state"] in local_jobs.ENDED:
                return current
            self.log.info("%s for %.0f s", current["state"].lower(), time.monotonic() - started)
            time.sleep(self.poll_seconds)

    def on_kill(self) -> None:
        if self.folder is not None:
            local_jobs.cancel(self.folder)


class LocalBatchOperator(BaseOperator):
    """Starts the local scoring batch of the ``plan``'s run and returns without waiting, as
    ``dataproc_operators.ChurnDataprocCreateBatchOperator`` does on Dataproc: built around the
    registry's champion when new work starts, re-attached on an automatic retry, and the first
    try after a clear cancels the batches of the tries before it that still run.

    Returns ``{"batch_id", "state", "model_version"}`` for the sensor and the validation.
    """

    template_fields = ("plan", "root")

    def __init__(self, *, plan, stage: Stage, root: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.plan, self.stage = plan, stage
        self.root = root or settings.local_root()

    def _folder(self, attempt: str) -> Path:
        batch_id = lineage.batch_id(self.stage, self.plan["pipeline_id"], attempt)
        return local_jobs.job_dir(self.root, local_jobs.BATCH, batch_id)

    def execute(self, context) -> dict:
        ti, run_key = context["ti"], self.plan["run_key"]
        for attempt in run_ids.superseded(run_key, ti, self.retries):
            earlier_job = _reusable(folder := self._folder(attempt))
            if earlier_job is not None and earlier_job["state"] != local_jobs.SUCCEEDED:
                self.log.info("cancelling %s, started before the task was cleared", folder.name)
                local_jobs.cancel(folder)
        earlier, current = run_ids.attempts(run_key, ti, self.retries)
        found = run_ids.first_reusable(earlier, lambda a: _reusable(self._folder(a)))
        if found:
            folder, state = self._folder(found[0]), found[1]["state"]
            self.log.info("batch %s is %s: waiting on it", folder.name, state)
            batch = local_jobs.read_request(folder)
        else:
            folder = self._folder(current)
            batch = scoring.champion_batch(settings.environment(), self.plan, context, current)
            state = local_jobs.submit(folder, batch)["state"]
            self.log.info(
                "local batch %s: %s (log: %s)", folder.name, state, folder / local_jobs.LOG
            )
        return {
            "batch_id": folder.name,
            "state": state,
            "model_version": scoring.model_version(batch),
        }


class LocalBatchSensor(BaseSensorOperator):
    """Waits for a local batch; fails with the batch's error when it failed."""

    template_fields = ("batch_id", "root")

    def __init__(self, *, batch_id: str, root: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.batch_id = batch_id
        self.root = root or settings.local_root()

    def poke(self, context) -> bool:
        folder = local_jobs.job_dir(self.root, local_jobs.BATCH, self.batch_id)
        current = local_jobs.state(folder)
        if current["state"] == local_jobs.FAILED:
            log = folder / local_jobs.LOG
            raise AirflowException(
                f"Batch {self.batch_id} failed (log: {log}): {current.get('message')}"
            )
        self.log.info("batch %s is %s", self.batch_id, current["state"])
        return current["state"] == local_jobs.SUCCEEDED
