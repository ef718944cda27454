"""One operator per DAG step, chosen by ``CHURN_BACKEND`` (``local`` by default, or ``gcp``).

The DAG files call these and read the same for both backends. Configuration that differs per
deployment reaches the operators through templates of the run's plan (see ``settings``), so
nothing here reads Variables or touches the network at parse time.
"""

from __future__ import annotations

import datetime as dt

from churn_airflow import settings

PLAN = "{{{{ ti.xcom_pull(task_ids='{task}')['{key}'] }}}}"
CLOUD_RETRIES = {
    "retries": 3,
    "retry_delay": dt.timedelta(minutes=2),
    "retry_exponential_backoff": True,
}


def plan(task_id: str, key: str) -> str:
    """A template that renders one field of a plan task's return value (as a native object)."""
    return PLAN.format(task=task_id, key=key)


def input_sensor(task_id: str, kind: str):
    """Waits for the day's raw input partition without holding a worker slot."""
    prefix = f"landing/{kind}/dt={{{{ ds }}}}/"
    common = {"task_id": task_id, "poke_interval": 300, "timeout": 12 * 3600}
    if settings.backend() == "gcp":
        from airflow.providers.google.cloud.sensors.gcs import GCSObjectsWithPrefixExistenceSensor

        return GCSObjectsWithPrefixExistenceSensor(
            bucket=settings.template("data_bucket"), prefix=prefix, deferrable=True, **common
        )
    from churn_airflow.local_operators import LocalPathSensor

    return LocalPathSensor(path=f"{settings.local_root()}/{prefix}", mode="reschedule", **common)


def training_pipeline(task_id: str, plan_task: str):
    """Runs the training pipeline: Vertex AI (deferred while it runs) or kfp.local."""
    values = plan(plan_task, "parameter_values")
    if settings.backend() == "gcp":
        from churn_airflow.vertex_lazy import LazyPipelineJobOperator

        return LazyPipelineJobOperator(
            task_id=task_id,
            project_id=settings.template("project"),
            region=settings.template("region"),
            display_name=f"customer-churn-training-{plan(plan_task, 'pipeline_id')}",
            template_path=settings.template_path(),
            pipeline_root=f"gs://{settings.template('model_bucket')}/pipeline-root",
            parameter_values=values,
            service_account=settings.template("service_account") or None,
            enable_caching=False,
            labels={"app": "customer-churn"},
            deferrable=True,
            poll_interval=60,
            **CLOUD_RETRIES,
        )
    from churn_airflow.local_operators import LocalPipelineOperator

    return LocalPipelineOperator(task_id=task_id, parameter_values=values)


def scoring_batch(task_id: str, plan_task: str):
    """Submits the scoring batch and returns at once with ``{"batch_id", "state"}``."""
    batch, pipeline_id = plan(plan_task, "batch"), plan(plan_task, "pipeline_id")
    if settings.backend() == "gcp":
        from churn_airflow.dataproc_operators import ChurnDataprocCreateBatchOperator

        return ChurnDataprocCreateBatchOperator(
            task_id=task_id,
            project_id=settings.template("project"),
            region=settings.template("region"),
            batch=batch,
            pipeline_id=pipeline_id,
            step="scoring",
            **CLOUD_RETRIES,
        )
    from churn_airflow.local_operators import LocalBatchOperator

    return LocalBatchOperator(task_id=task_id, batch=batch, pipeline_id=pipeline_id, step="scoring")


def scoring_sensor(task_id: str, submit_task: str):
    """Waits for the scoring batch in reschedule mode, failing if the batch failed."""
    batch_id = plan(submit_task, "batch_id")
    common = {"task_id": task_id, "mode": "reschedule", "poke_interval": 60, "timeout": 6 * 3600}
    if settings.backend() == "gcp":
        from airflow.providers.google.cloud.sensors.dataproc import DataprocBatchSensor

        return DataprocBatchSensor(
            batch_id=batch_id,
            project_id=settings.template("project"),
            region=settings.template("region"),
            **common,
        )
    from churn_airflow.local_operators import LocalBatchSensor

    return LocalBatchSensor(batch_id=batch_id, **{**common, "poke_interval": 10})
