"""``DataprocCreateBatchOperator`` mended for retries (imported only by the gcp backend)."""

from __future__ import annotations

from airflow.providers.google.cloud.operators.dataproc import DataprocCreateBatchOperator
from google.api_core.exceptions import NotFound
from google.cloud.dataproc_v1 import Batch

from churn_airflow import run_ids, scoring, settings
from churn_core import lineage
from churn_core.stages import Stage

# An earlier attempt's batch in these states is waited on instead of starting another.
REUSABLE = {Batch.State.PENDING, Batch.State.RUNNING, Batch.State.SUCCEEDED}


class ChurnDataprocCreateBatchOperator(DataprocCreateBatchOperator):
    """Submits the scoring batch of this attempt of the ``plan``'s run, built around the
    registry's champion of this moment, unless an automatic retry finds an earlier try's
    batch that succeeded or still runs (``run_ids.attempts``). The first try after a clear
    always starts a new batch, after cancelling the batches of the tries before the clear that
    still run: one batch writes a run's partition.

    Returns ``{"batch_id", "state", "model_version"}`` for the sensor and the validation: in
    asynchronous or deferrable mode the provider's own return value does not name the batch.
    """

    template_fields = (*DataprocCreateBatchOperator.template_fields, "plan")

    def __init__(self, *, plan, stage: Stage, **kwargs):
        # submit and return: the sensor waits. Never deferrable, whatever [operators]
        # default_deferrable says (the provider refuses asynchronous with deferrable).
        super().__init__(batch=None, asynchronous=True, deferrable=False, **kwargs)  # built later
        self.plan, self.stage = plan, stage

    def _batch_id(self, attempt: str) -> str:
        return lineage.batch_id(self.stage, self.plan["pipeline_id"], attempt)

    def _get(self, attempt: str) -> Batch | None:
        try:
            return self.hook.get_batch(
                batch_id=self._batch_id(attempt), region=self.region, project_id=self.project_id
            )
        except NotFound:
            return None

    def _reusable(self, attempt: str) -> Batch | None:
        batch = self._get(attempt)
        return batch if batch is not None and batch.state in REUSABLE else None

    def _cancel_if_running(self, attempt: str) -> None:
        batch = self._get(attempt)
        if batch is not None and batch.state in REUSABLE - {Batch.State.SUCCEEDED}:
            self.log.info("cancelling %s, started before the task was cleared", batch.name)
            client = self.hook.get_batch_client(region=self.region)
            client.cancel_operation({"name": batch.operation})

    def execute(self, context) -> dict:
        ti, run_key = context["ti"], self.plan["run_key"]
        for attempt in run_ids.superseded(run_key, ti, self.retries):
            self._cancel_if_running(attempt)
        earlier, current = run_ids.attempts(run_key, ti, self.retries)
        found = run_ids.first_reusable(earlier, self._reusable)
        if found:
            batch_id, batch = self._batch_id(found[0]), found[1]
            self.log.info("batch %s is %s: waiting on it", batch_id, batch.state.name)
            version = scoring.model_version(type(batch).to_dict(batch))
            return {"batch_id": batch_id, "state": batch.state.name, "model_version": version}
        self.batch = scoring.champion_batch(settings.environment(), self.plan, context, current)
        self.batch_id = self._batch_id(current)
        result = super().execute(context)
        state = Batch.State(result["state"]).name
        return {
            "batch_id": self.batch_id,
            "state": state,
            "model_version": scoring.model_version(self.batch),
        }
