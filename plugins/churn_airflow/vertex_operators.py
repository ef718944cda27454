"""``RunPipelineJobOperator`` mended for scheduled production runs.

Importing the provider's Vertex module costs seconds, so no DAG file imports this one: the
training DAG holds a ``vertex_lazy.LazyPipelineJobOperator``, which builds this operator when
the task runs.
"""

from __future__ import annotations

from airflow.providers.google.cloud.operators.vertex_ai.pipeline_job import RunPipelineJobOperator
from airflow.sdk.exceptions import AirflowException
from google.api_core.exceptions import AlreadyExists
from google.cloud.aiplatform_v1.types import PipelineState

from churn_airflow.vertex_lazy import JOB_ID_KEY
from pipeline.params import for_attempt, job_id

ENDED_BADLY = {PipelineState.PIPELINE_STATE_FAILED, PipelineState.PIPELINE_STATE_CANCELLED}


class ChurnRunPipelineJobOperator(RunPipelineJobOperator):
    """``RunPipelineJobOperator`` with templated ids, per-attempt ids, re-attach and strict states.

    - ``job_id`` and ``display_name`` are templated; both and the batch ids in
      ``parameter_values`` get the attempt suffix, so a retry after a failure starts afresh.
    - A submit that finds its own job already there re-attaches instead of failing.
    - A CANCELLED job fails the task (the provider counts it as success when not deferred).
    """

    template_fields = (*RunPipelineJobOperator.template_fields, "job_id", "display_name", "labels")

    def execute(self, context):
        attempt = context["ti"].try_number
        self.parameter_values = for_attempt(self.parameter_values, attempt)
        self.job_id = job_id(self.parameter_values["pipeline_id"], attempt)
        try:
            result = super().execute(context)
        except AlreadyExists:
            return self._reattach(context)
        self._check(result)
        return result

    def _reattach(self, context):
        job = self.hook.get_pipeline_job(
            project_id=self.project_id, region=self.region, pipeline_job_id=self.job_id
        )
        self.log.info("pipeline job %s exists (%s): re-attaching", self.job_id, job.state.name)
        context["ti"].xcom_push(key=JOB_ID_KEY, value=self.job_id)
        if job.state in ENDED_BADLY:
            raise AirflowException(f"pipeline job {self.job_id} already ended {job.state.name}")
        if job.state == PipelineState.PIPELINE_STATE_SUCCEEDED:
            return type(job).to_dict(job)
        if self.deferrable:
            from airflow.providers.google.cloud.triggers.vertex_ai import RunPipelineJobTrigger

            self.defer(
                trigger=RunPipelineJobTrigger(
                    conn_id=self.gcp_conn_id,
                    project_id=self.project_id,
                    location=self.region,
                    job_id=self.job_id,
                    poll_interval=self.poll_interval,
                    impersonation_chain=self.impersonation_chain,
                ),
                method_name="execute_complete",
            )
        raise AirflowException(f"pipeline job {self.job_id} is still running; retry to wait again")

    def _check(self, result) -> None:
        state = (result or {}).get("state") if isinstance(result, dict) else None
        if state in ("PIPELINE_STATE_CANCELLED", "PIPELINE_STATE_FAILED"):
            raise AirflowException(f"pipeline job {self.job_id} ended {state}")
