"""The GCS sensor of a day's completion marker (imported only by the gcp backend)."""

from __future__ import annotations

import datetime as dt

from airflow.providers.google.cloud.hooks.gcs import GCSHook
from airflow.providers.google.cloud.sensors.gcs import GCSObjectExistenceSensor
from airflow.sdk.bases.operator import TRIGGER_FAIL_REPR, TriggerFailureReason
from airflow.sdk.exceptions import AirflowSensorTimeout

from churn_airflow import landing


class DayCompleteSensor(GCSObjectExistenceSensor):
    """``GCSObjectExistenceSensor`` on a day's marker, deferred on the provider's own trigger;
    a timeout, deferred or not, says what the day's folder holds (as ``LocalPathSensor``)."""

    def _missing(self) -> str:
        folder, _, marker = self.object.rpartition("/")
        hook = GCSHook(
            gcp_conn_id=self.google_cloud_conn_id, impersonation_chain=self.impersonation_chain
        )
        names = [n.removeprefix(f"{folder}/") for n in hook.list(self.bucket, prefix=f"{folder}/")]
        return landing.incomplete(f"gs://{self.bucket}/{folder}", names, marker)

    def execute(self, context):
        try:
            return super().execute(context)
        except AirflowSensorTimeout as timeout:
            raise AirflowSensorTimeout(f"{self._missing()}; {timeout}") from None

    def resume_execution(self, next_method, next_kwargs, context):
        """The deferral's timeout fails here, in the worker, with the day's state."""
        error = (next_kwargs or {}).get("error")
        if next_method == TRIGGER_FAIL_REPR and error == TriggerFailureReason.TRIGGER_TIMEOUT:
            waited = dt.timedelta(seconds=self.timeout)
            raise AirflowSensorTimeout(f"{self._missing()}; waited {waited}")
        return super().resume_execution(next_method, next_kwargs, context)
