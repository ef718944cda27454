"""``RunPipelineJobOperator`` mended for scheduled production runs.

Importing the provider's Vertex module costs seconds, so no DAG file imports this one: the
training DAG holds a ``vertex_lazy.LazyPipelineJobOperator``, which builds this operator when
the task runs. Deferred, it waits in slices on Airflow's own ``TimeDeltaTrigger``: Composer 3's
triggerer has only the environment's PyPI packages, none of this package.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from typing import NoReturn

from airflow.providers.google.cloud.operators.vertex_ai.pipeline_job import RunPipelineJobOperator
from airflow.providers.google.cloud.triggers.vertex_ai import RunPipelineJobTrigger
from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
from airflow.sdk.exceptions import AirflowException
from google.api_core.exceptions import AlreadyExists, NotFound
from google.cloud.aiplatform_v1.types import PipelineJob, PipelineState, PipelineTaskDetail

from churn_airflow import lineage_parent, run_ids
from churn_core import lineage
from churn_core.pipeline_params import for_attempt

S = PipelineState
# An earlier attempt's job in these states is waited on instead of starting another.
REUSABLE = {
    S.PIPELINE_STATE_QUEUED,
    S.PIPELINE_STATE_PENDING,
    S.PIPELINE_STATE_RUNNING,
    S.PIPELINE_STATE_SUCCEEDED,
}
SUCCEEDED, ENDED_BADLY = (
    S.PIPELINE_STATE_SUCCEEDED,
    {S.PIPELINE_STATE_FAILED, S.PIPELINE_STATE_CANCELLED},
)


def step_lines(job: Mapping) -> list[str]:
    """Each step of a pipeline job (a ``PipelineJob`` as a dict) from its task details, in the
    order they started: its state, start and duration; the root and the condition groups, which
    run no container, are left out."""
    steps = [
        t for t in job.get("job_detail", {}).get("task_details", []) if t.get("executor_detail")
    ]
    lines = []
    for task in sorted(steps, key=lambda t: t.get("start_time") or "~"):
        state = PipelineTaskDetail.State(task["state"]).name.lower()
        if "start_time" not in task:
            lines.append(f"step {task['task_name']} {state}")
            continue
        started = dt.datetime.fromisoformat(task["start_time"])
        line = f"step {task['task_name']} started {started:%H:%M:%S} UTC"
        if "end_time" in task:
            seconds = (dt.datetime.fromisoformat(task["end_time"]) - started).total_seconds()
            line += f", {state} in {seconds:.0f} s"
        lines.append(line)
    return lines


class ChurnRunPipelineJobOperator(RunPipelineJobOperator):
    """``RunPipelineJobOperator`` with per-attempt ids, retries that re-attach, and strict states.

    - The job id, the batch ids and the artifact folders come from the run's ``pipeline_id``
      and this attempt (``<run_key>-<try>``). The first try after a clear submits a new job;
      an automatic retry first re-attaches to an earlier try's job that still runs or
      succeeded, so one run never has two jobs writing its outputs.
    - A submit that finds its own job already there re-attaches instead of failing.
    - A CANCELLED job fails the task (the provider counts it as success when not deferred).
    - The first try after a clear cancels the jobs of the tries before it that still run.
    - Killing the task while it waits in ``execute`` cancels the job it is attached to.
    - The task log shows each step of the job (``step_lines``) as it starts and ends, whether
      the task waits in ``execute`` or deferred: a deferred wait is slices of ``poll_interval``
      on a standard trigger, each followed by a look at the job on the worker (``poll``). The
      provider's ``RunPipelineJobTrigger`` ends only with the job, so its task log is silent.
    """

    template_fields = (*RunPipelineJobOperator.template_fields, "display_name", "labels", "run_key")

    def __init__(self, *, run_key: str, **kwargs):
        super().__init__(**kwargs)
        self.run_key = run_key

    def _job_id(self, attempt: str) -> str:
        return lineage.job_id(self.parameter_values["pipeline_id"], attempt)

    def _job(self, attempt: str) -> PipelineJob | None:
        """The pipeline job of ``attempt``; None if it was never submitted."""
        try:
            return self.hook.get_pipeline_job(
                project_id=self.project_id,
                region=self.region,
                pipeline_job_id=self._job_id(attempt),
            )
        except NotFound:
            return None

    def _cancel_if_running(self, attempt: str) -> None:
        """A clear makes new work: the job of an attempt before it must not write on."""
        job = self._job(attempt)
        if job is not None and job.state in REUSABLE - {SUCCEEDED}:
            self.log.info("cancelling %s, started before the task was cleared", job.name)
            self.hook.get_pipeline_service_client(region=self.region).cancel_pipeline_job(
                name=job.name
            )

    def _reusable(self, attempt: str) -> PipelineJob | None:
        job = self._job(attempt)
        return job if job is not None and job.state in REUSABLE else None

    def execute(self, context):
        ti = context["ti"]
        for attempt in run_ids.superseded(self.run_key, ti, self.retries):
            self._cancel_if_running(attempt)
        earlier, current = run_ids.attempts(self.run_key, ti, self.retries)
        found = run_ids.first_reusable(earlier, self._reusable)
        self._adopt(context, found[0] if found else current)
        if found:
            self.log.info("pipeline job %s is %s: re-attaching", self.job_id, found[1].state.name)
            return self._attach(found[1])
        try:
            result = super().execute(context)
        except AlreadyExists:
            job = self.hook.get_pipeline_job(
                project_id=self.project_id, region=self.region, pipeline_job_id=self.job_id
            )
            self.log.info("pipeline job %s exists (%s): re-attaching", self.job_id, job.state.name)
            return self._attach(job)
        self._check((result or {}).get("state"))
        return result

    def _adopt(self, context, attempt: str) -> None:
        """Take this attempt's job id and values (its batches under this task's OpenLineage
        run), and tell downstream tasks which they are."""
        values = lineage_parent.pipeline_values(self.parameter_values, context)
        self.parameter_values = for_attempt(values, attempt)
        # the billing export joins the job, as it joins its batches, on these labels
        self.labels = {**(self.labels or {}), **self.parameter_values["labels"]}
        ti = context["ti"]
        self.job_id = self._job_id(attempt)
        ti.xcom_push(key=run_ids.JOB_ID_KEY, value=self.job_id)
        ti.xcom_push(key=run_ids.RUN_VALUES_KEY, value=self.parameter_values)

    def _attach(self, job: PipelineJob):
        if job.state in ENDED_BADLY:
            raise AirflowException(f"pipeline job {self.job_id} already ended {job.state.name}")
        if job.state != SUCCEEDED and self.deferrable:
            self._wait_a_slice(logged=[])
        logged, found = [], type(job).to_dict(job)
        while job.state not in (SUCCEEDED, *ENDED_BADLY):
            time.sleep(self.poll_interval)
            job, found, logged = self._look(logged)
        self._check(job.state.name)
        return found

    def _look(self, logged: list[str]) -> tuple[PipelineJob, dict, list[str]]:
        """Read the job and log its step lines not in ``logged``; returns the job, as a dict,
        and every line logged so far."""
        job = self.hook.get_pipeline_job(
            project_id=self.project_id, region=self.region, pipeline_job_id=self.job_id
        )
        found = type(job).to_dict(job)
        new = [line for line in step_lines(found) if line not in logged]
        for line in new:
            self.log.info("%s", line)
        return job, found, [*logged, *new]

    def defer(self, *, trigger, method_name, kwargs=None, timeout=None) -> NoReturn:
        """The provider's ``execute`` defers on its ``RunPipelineJobTrigger`` once it submitted
        the job: wait in slices instead."""
        if isinstance(trigger, RunPipelineJobTrigger):
            self._wait_a_slice(logged=[])
        super().defer(trigger=trigger, method_name=method_name, kwargs=kwargs, timeout=timeout)

    def _wait_a_slice(self, logged: list[str]) -> NoReturn:
        super().defer(
            trigger=TimeDeltaTrigger(dt.timedelta(seconds=self.poll_interval)),
            method_name="poll",
            kwargs={"job_id": self.job_id, "logged": logged},
        )

    def poll(self, context, event=None, *, job_id: str, logged: list[str]):
        """A slice of the deferred wait on ``job_id`` ended: log the steps that started or
        ended since the last look, then return the job once it ended, or wait another slice."""
        self.job_id = job_id
        job, found, logged = self._look(logged)
        if job.state not in (SUCCEEDED, *ENDED_BADLY):
            self._wait_a_slice(logged)
        self._check(job.state.name)
        return found

    def _check(self, state: str | None) -> None:
        if state in {s.name for s in ENDED_BADLY}:
            raise AirflowException(f"pipeline job {self.job_id} ended {state}")

    def on_kill(self) -> None:
        """Cancel the job this task is attached to, whether it submitted it or re-attached."""
        if not self.job_id:
            return
        client = self.hook.get_pipeline_service_client(region=self.region)
        client.cancel_pipeline_job(
            name=client.pipeline_job_path(self.project_id, self.region, self.job_id)
        )
        self.log.info("cancelled pipeline job %s", self.job_id)
