"""What a run's Spark jobs spent, read when they end, and priced (``churn_core.usage``).

On gcp each Dataproc batch reports its approximate usage; locally the job runner measured the
machine's (``pipeline.components.spark_submit``). Prices come from ``settings.prices``.
"""

from __future__ import annotations

from churn_airflow import local_jobs, settings
from churn_core import lineage, stages, usage


def _local(kind: str, job_id: str) -> dict:
    """The state a finished local job recorded (empty if it never ran)."""
    try:
        return local_jobs.state(local_jobs.job_dir(settings.local_root(), kind, job_id))
    except LookupError:
        return {}


def _dataproc(env, batch_id: str) -> dict | None:
    from airflow.providers.google.cloud.hooks.dataproc import DataprocHook
    from google.api_core.exceptions import NotFound
    from google.cloud.dataproc_v1 import Batch

    try:
        batch = DataprocHook().get_batch(
            batch_id=batch_id, region=env.region, project_id=env.project
        )
    except NotFound:  # a step that did not run (tuning below its gate)
        return None
    return usage.from_batch(Batch.to_dict(batch))


def batch_usage(env, batch_id: str) -> dict | None:
    """One batch's usage, priced; None when it recorded none."""
    if settings.backend() == "local":
        found = _local(local_jobs.BATCH, batch_id).get("usage")
    else:
        found = _dataproc(env, batch_id)
    return usage.priced(found, settings.prices()) if found else None


def pipeline_usage(env, values: dict) -> dict | None:
    """What one attempt of the training pipeline spent, its Spark steps summed, priced."""
    ids = [values[f"{stage.name}_batch_id"] for stage in stages.PIPELINE]
    if settings.backend() == "local":
        job = lineage.job_id(values["pipeline_id"], values["attempt"])
        spent = _local(local_jobs.PIPELINE, job).get("summary", {}).get("usage", {})
        found = [spent[i] for i in ids if i in spent]
    else:
        found = [u for u in (_dataproc(env, i) for i in ids) if u is not None]
    return usage.priced(usage.total(found), settings.prices()) if found else None
