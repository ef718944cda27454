"""``DataprocCreateBatchOperator`` mended for retries (imported only by the gcp backend)."""

from __future__ import annotations

from airflow.providers.google.cloud.operators.dataproc import DataprocCreateBatchOperator
from google.api_core.exceptions import NotFound
from google.cloud.dataproc_v1 import Batch

from churn_airflow.run_ids import batch_attempts

# An earlier attempt's batch in these states is waited on instead of starting another.
REUSABLE = {Batch.State.PENDING, Batch.State.RUNNING, Batch.State.SUCCEEDED}


class ChurnDataprocCreateBatchOperator(DataprocCreateBatchOperator):
    """Submits the batch for this attempt, unless an earlier attempt's batch succeeded or runs.

    Returns ``{"batch_id", "state"}`` for the sensor: in asynchronous or deferrable mode the
    provider's own return value does not name the batch.
    """

    template_fields = (*DataprocCreateBatchOperator.template_fields, "pipeline_id")

    def __init__(self, *, pipeline_id: str, step: str, **kwargs):
        super().__init__(asynchronous=True, **kwargs)
        self.pipeline_id, self.step = pipeline_id, step

    def execute(self, context) -> dict:
        earlier, current = batch_attempts(self.step, self.pipeline_id, context["ti"].try_number)
        for batch_id in earlier:
            try:
                batch = self.hook.get_batch(
                    batch_id=batch_id, region=self.region, project_id=self.project_id
                )
            except NotFound:
                continue
            if batch.state in REUSABLE:
                self.log.info("batch %s is %s: using it, not a new one", batch_id, batch.state.name)
                return {"batch_id": batch_id, "state": batch.state.name}
        self.batch_id = current
        result = super().execute(context)
        return {"batch_id": current, "state": Batch.State(result["state"]).name}
