"""``DataprocCreateBatchOperator`` mended for retries (imported only by the gcp backend)."""

from __future__ import annotations

from airflow.providers.google.cloud.operators.dataproc import DataprocCreateBatchOperator
from google.api_core.exceptions import NotFound
from google.cloud.dataproc_v1 import Batch

from churn_airflow import run_ids
from churn_core import lineage

# An earlier attempt's batch in these states is waited on instead of starting another.
REUSABLE = {Batch.State.PENDING, Batch.State.RUNNING, Batch.State.SUCCEEDED}


class ChurnDataprocCreateBatchOperator(DataprocCreateBatchOperator):
    """Submits this attempt's batch, unless an automatic retry finds an earlier try's batch
    that succeeded or still runs (``run_ids.attempts``): the first try after a clear always
    starts a new batch.

    Returns ``{"batch_id", "state"}`` for the sensor: in asynchronous or deferrable mode the
    provider's own return value does not name the batch.
    """

    template_fields = (*DataprocCreateBatchOperator.template_fields, "pipeline_id", "run_key")

    def __init__(self, *, pipeline_id: str, run_key: str, step: str, **kwargs):
        # submit and return: the sensor waits. Never deferrable, whatever [operators]
        # default_deferrable says (the provider refuses asynchronous with deferrable).
        super().__init__(asynchronous=True, deferrable=False, **kwargs)
        self.pipeline_id, self.run_key, self.step = pipeline_id, run_key, step

    def _reusable(self, attempt: str) -> Batch | None:
        try:
            batch = self.hook.get_batch(
                batch_id=lineage.batch_id(self.step, self.pipeline_id, attempt),
                region=self.region,
                project_id=self.project_id,
            )
        except NotFound:
            return None
        return batch if batch.state in REUSABLE else None

    def execute(self, context) -> dict:
        earlier, current = run_ids.attempts(self.run_key, context["ti"], self.retries)
        found = run_ids.first_reusable(earlier, self._reusable)
        if found:
            batch_id = lineage.batch_id(self.step, self.pipeline_id, found[0])
            self.log.info("batch %s is %s: waiting on it", batch_id, found[1].state.name)
            return {"batch_id": batch_id, "state": found[1].state.name}
        self.batch_id = lineage.batch_id(self.step, self.pipeline_id, current)
        result = super().execute(context)
        return {"batch_id": self.batch_id, "state": Batch.State(result["state"]).name}
