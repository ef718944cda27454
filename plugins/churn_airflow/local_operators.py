"""Operators of the local backend, shaped like the Google provider ones they stand in for."""

from __future__ import annotations

import contextlib
from pathlib import Path

from airflow.sdk import BaseOperator, BaseSensorOperator
from airflow.sdk.exceptions import AirflowException

from churn_airflow import local_batch, settings
from churn_airflow.run_ids import batch_attempts


class LocalPathSensor(BaseSensorOperator):
    """Waits until a folder holds at least one file (the local GCS prefix sensor)."""

    template_fields = ("path",)

    def __init__(self, *, path: str, **kwargs):
        super().__init__(**kwargs)
        self.path = path

    def poke(self, context) -> bool:
        folder = Path(self.path.removeprefix("file://"))
        found = folder.is_dir() and any(p.is_file() for p in folder.iterdir())
        self.log.info("%s %s", folder, "has input" if found else "has no input yet")
        return found


class LocalPipelineOperator(BaseOperator):
    """Runs the training pipeline with kfp.local, with the values Vertex would get."""

    template_fields = ("parameter_values",)

    def __init__(self, *, parameter_values, **kwargs):
        super().__init__(**kwargs)
        self.parameter_values = parameter_values

    def execute(self, context) -> dict:
        from pipeline.params import for_attempt
        from pipeline.run_local import run_values

        values = for_attempt(self.parameter_values, context["ti"].try_number)
        root = Path(values["artifact_root"]) / "kfp"
        summary = run_values(values, root)
        self.log.info("local pipeline finished: %s", summary)
        return summary


class LocalBatchOperator(BaseOperator):
    """Starts a local batch from a Dataproc Batch dict and returns without waiting.

    Returns ``{"batch_id", "state"}``; an earlier attempt that did not fail is reused.
    """

    template_fields = ("batch", "pipeline_id", "root")

    def __init__(self, *, batch, pipeline_id: str, step: str, root: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.batch, self.pipeline_id, self.step = batch, pipeline_id, step
        self.root = root or settings.local_root()

    def execute(self, context) -> dict:
        earlier, current = batch_attempts(self.step, self.pipeline_id, context["ti"].try_number)
        for batch_id in earlier:
            with contextlib.suppress(LookupError):
                earlier_state = local_batch.state(self.root, batch_id)["state"]
                if earlier_state != local_batch.FAILED:
                    self.log.info(
                        "batch %s is %s: using it, not a new one", batch_id, earlier_state
                    )
                    return {"batch_id": batch_id, "state": earlier_state}
        result = local_batch.submit(self.root, current, self.batch)
        self.log.info(
            "local batch %s: %s (log: %s)",
            current,
            result["state"],
            local_batch.batch_dir(self.root, current) / "driver.log",
        )
        return {"batch_id": current, "state": result["state"]}


class LocalBatchSensor(BaseSensorOperator):
    """Waits for a local batch; fails with the batch's error when it failed."""

    template_fields = ("batch_id", "root")

    def __init__(self, *, batch_id: str, root: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.batch_id = batch_id
        self.root = root or settings.local_root()

    def poke(self, context) -> bool:
        current = local_batch.state(self.root, self.batch_id)
        if current["state"] == local_batch.FAILED:
            raise AirflowException(f"Batch {self.batch_id} failed: {current.get('message')}")
        self.log.info("batch %s is %s", self.batch_id, current["state"])
        return current["state"] == local_batch.SUCCEEDED
