"""The training DAG's Vertex AI task, cheap to parse.

Importing the provider's Vertex pipeline-job module costs seconds, and the DAG processor would
pay them on every parse. ``LazyPipelineJobOperator`` holds the same arguments, and builds the
real ``ChurnRunPipelineJobOperator`` only when it runs (``execute``, and ``poll`` after each
slice of a deferred wait), handing it the rendered arguments and every BaseOperator argument of
the task (its retries above all: they tell an automatic retry from the first try after a clear).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from airflow.sdk import BaseOperator, BaseOperatorLink
from airflow.sdk.bases.operator import ExecutorSafeguard

from churn_airflow.run_ids import JOB_ID_KEY

CONSOLE = "https://console.cloud.google.com/vertex-ai/locations/{region}/pipelines/runs/{job}?project={project}"


class PipelineJobLink(BaseOperatorLink):
    """'Vertex AI pipeline job' button on the task: the job's page in the Cloud console."""

    name = "Vertex AI pipeline job"

    def get_link(self, operator, *, ti_key) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        job = XCom.get_value(ti_key=ti_key, key=JOB_ID_KEY)
        if not job:
            return ""
        return CONSOLE.format(region=operator.region, job=job, project=operator.project_id)


class LazyPipelineJobOperator(BaseOperator):
    """Runs the compiled pipeline on Vertex AI through ``ChurnRunPipelineJobOperator``.

    Takes that operator's arguments (see ``vertex_operators``) and templates the same ones.
    """

    template_fields = (
        "project_id",
        "region",
        "display_name",
        "template_path",
        "pipeline_root",
        "parameter_values",
        "service_account",
        "labels",
        "run_key",
    )
    operator_extra_links = (PipelineJobLink(),)
    job_arguments = (*template_fields, "enable_caching", "deferrable", "poll_interval")

    def __init__(
        self,
        *,
        project_id: str,
        region: str,
        display_name: str,
        template_path: str,
        pipeline_root: str,
        parameter_values: dict | str,
        run_key: str,
        service_account: str | None = None,
        labels: dict | None = None,
        enable_caching: bool = False,
        deferrable: bool = True,
        poll_interval: int = 60,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        # the DAG's default_args included; the real operator joins no DAG
        self.task_arguments = {k: v for k, v in kwargs.items() if k not in ("dag", "task_group")}
        self.project_id = project_id
        self.region = region
        self.display_name = display_name
        self.template_path = template_path
        self.pipeline_root = pipeline_root
        self.parameter_values = parameter_values
        self.run_key = run_key
        self.service_account = service_account
        self.labels = labels
        self.enable_caching = enable_caching
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.job = None  # the real operator while it runs, for on_kill

    def job_operator(self):
        """The real operator, with this task's id and rendered arguments."""
        from churn_airflow.vertex_operators import ChurnRunPipelineJobOperator

        arguments = {name: getattr(self, name) for name in self.job_arguments}
        return ChurnRunPipelineJobOperator(
            **{**self.task_arguments, "task_id": self.task_id}, **arguments
        )

    @contextlib.contextmanager
    def _attached(self) -> Iterator:
        """The real operator, held only while it runs. A kill that comes after the try ended
        (under load Airflow's scheduler can take a try whose poll failed for a killed one)
        leaves the job to the automatic retry, which re-attaches to it."""
        self.job = self.job_operator()
        try:
            yield self.job
        finally:
            self.job = None

    def execute(self, context):
        with self._attached() as job:
            # Run it as this task itself, so Airflow does not warn about a nested operator.
            token = ExecutorSafeguard.tracker.set(job)
            try:
                return job.execute(context)
            finally:
                ExecutorSafeguard.tracker.reset(token)

    def on_kill(self) -> None:
        """A task killed while it waits in ``execute`` or ``poll`` cancels the job it is
        attached to (while deferred, the next try after a clear does)."""
        if self.job is not None:
            self.job.on_kill()

    def poll(self, context, event=None, **waiting):
        """A slice of the deferred wait ended (``ChurnRunPipelineJobOperator.poll``)."""
        with self._attached() as job:
            return job.poll(context, event, **waiting)

    def execute_complete(self, context, event: dict):
        """The end of a wait deferred by a release that waited on ``RunPipelineJobTrigger``."""
        return self.job_operator().execute_complete(context, event)
