"""One operator per DAG step, chosen by ``CHURN_BACKEND`` (``local`` by default, or ``gcp``).

The DAG files call these and read the same for both backends. Per-run values reach the
operators as XComArgs of the run's plan task; per-deployment settings as templates (see
``settings``). Nothing here reads Variables or touches the network at parse time.
"""

from __future__ import annotations

import datetime as dt

from churn_airflow import settings
from churn_core import batches, runtime, stages

CLOUD_RETRIES = {
    "retries": 3,
    "retry_delay": dt.timedelta(minutes=2),
    "retry_exponential_backoff": True,
}


def default_args() -> dict:
    """Every churn DAG's task defaults: one retry, and a notification on each failure."""
    from churn_airflow import notify

    return {
        "owner": "ml-platform",
        "retries": 1,
        "retry_delay": dt.timedelta(minutes=5),
        "on_failure_callback": notify.task_failed,
    }


APPRISE_NOTIFIER = "airflow.providers.apprise.notifications.apprise.AppriseNotifier"


def deadline(dag: str, what: str):
    """When a run of ``dag`` (``training`` or ``scoring``) is late, ``settings.deadline`` after
    its logical date, and who is told: locally ``notify.deadline_missed``, run by the executor; on
    gcp the Apprise provider's notifier, run by the triggerer (which loads provider code only),
    when ``CHURN_NOTIFIER`` names its connection (else no alert: nobody would hear it)."""
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference, SyncCallback

    late = settings.deadline(dag)
    if late is None:
        return None
    if settings.backend() == "local":
        callback = SyncCallback("churn_airflow.notify.deadline_missed", kwargs={"what": what})
    elif settings.notifier():
        message = {"title": f"customer_churn_{dag} is late", "notify_type": "warning",
                   "body": f"a run missed its deadline: {what}",
                   "apprise_conn_id": settings.notifier()}  # fmt: skip
        callback = AsyncCallback(APPRISE_NOTIFIER, kwargs=message)
    else:
        return None
    return DeadlineAlert(
        # not DAGRUN_QUEUED_AT: Airflow 3.3.2 fails every clear of a run with one, recomputing
        # it from the interval as stored (a dict, not seconds)
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
        interval=late,
        callback=callback,
        name=f"{dag} late",
    )


def input_sensor(task_id: str, marker):
    """Waits for the day's completion ``marker`` (in the data bucket or under the local root)
    without holding a worker slot."""
    common = {"task_id": task_id, "poke_interval": 300, "timeout": 12 * 3600}
    if settings.backend() == "gcp":
        from churn_airflow.gcs_sensors import DayCompleteSensor

        return DayCompleteSensor(
            bucket=settings.template("data_bucket"), object=marker, deferrable=True, **common
        )
    from churn_airflow.local_operators import LocalPathSensor

    return LocalPathSensor(marker=marker, mode="reschedule", **common)


def training_pipeline(task_id: str, plan):
    """Runs the training pipeline of the ``plan`` task's run: Vertex AI (deferred while it
    runs) or a local kfp.local job."""
    values, run_key = plan["parameter_values"], plan["run_key"]
    if settings.backend() == "gcp":
        from churn_airflow.vertex_lazy import LazyPipelineJobOperator

        return LazyPipelineJobOperator(
            task_id=task_id,
            project_id=settings.template("project"),
            region=settings.template("region"),
            display_name=plan["display_name"],
            template_path=settings.template_path(),
            pipeline_root=f"gs://{settings.template('model_bucket')}/pipeline-root",
            parameter_values=values,
            run_key=run_key,
            service_account=settings.template("service_account") or None,
            enable_caching=False,
            labels=batches.APP_LABEL,
            deferrable=True,
            poll_interval=settings.cloud_poll_seconds(),
            **CLOUD_RETRIES,
        )
    from churn_airflow.local_operators import LocalPipelineOperator

    return LocalPipelineOperator(
        task_id=task_id,
        parameter_values=values,
        run_key=run_key,
        pool=settings.LOCAL_SPARK_POOL,  # backfills queue here, not in Spark
    )


def scoring_batch(task_id: str, plan):
    """Submits the scoring batch of the ``plan`` task's run, with the registry's champion of
    that moment, and returns at once with ``{"batch_id", "state", "model_version"}`` (each also
    an XCom of its own)."""
    common = {"task_id": task_id, "plan": plan, "stage": stages.SCORING, "multiple_outputs": True}
    if settings.backend() == "gcp":
        from churn_airflow.dataproc_operators import ChurnDataprocCreateBatchOperator

        return ChurnDataprocCreateBatchOperator(
            project_id=settings.template("project"),
            region=settings.template("region"),
            **common,
            **CLOUD_RETRIES,
        )
    from churn_airflow.local_operators import LocalBatchOperator

    return LocalBatchOperator(**common)


def scoring_sensor(task_id: str, submit):
    """Waits for the batch ``submit`` started, in reschedule mode, failing if it failed."""
    batch_id = submit.output["batch_id"]
    timeout = runtime.BATCH_TTL_SECONDS + runtime.BATCH_QUEUE_SECONDS  # the batch ends before
    common = {"task_id": task_id, "mode": "reschedule", "timeout": timeout}
    if settings.backend() == "gcp":
        from airflow.providers.google.cloud.sensors.dataproc import DataprocBatchSensor

        return DataprocBatchSensor(
            batch_id=batch_id,
            project_id=settings.template("project"),
            region=settings.template("region"),
            poke_interval=settings.cloud_poll_seconds(),
            **common,
            **CLOUD_RETRIES,  # a failed poll is retried like any cloud call
        )
    from churn_airflow.local_operators import LocalBatchSensor

    # Not shorter: Airflow's scheduler can queue the next poke before it reads the executor's
    # event of the last one, and then fails the new try ("task state changed externally"),
    # which waits out the retry delay. At 5 s it did on a loaded machine.
    return LocalBatchSensor(batch_id=batch_id, poke_interval=10, **common)
