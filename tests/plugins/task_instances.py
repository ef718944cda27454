"""A running task instance for operator tests: what the operators and the OpenLineage
provider's macros read of it."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from unittest import mock

LOGICAL_DATE = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)


def task_instance(try_number: int = 1, max_tries: int = 1, task_id: str = "submit") -> mock.Mock:
    run = SimpleNamespace(
        logical_date=LOGICAL_DATE, run_after=LOGICAL_DATE, clear_number=0, conf={}
    )
    return mock.MagicMock(
        dag_id="customer_churn_scoring",
        task_id=task_id,
        map_index=-1,
        try_number=try_number,
        max_tries=max_tries,
        dag_run=run,
    )


def openlineage_parent(ti) -> dict[str, str]:
    """The Spark properties that name ``ti`` as the OpenLineage parent of a job, spelled as the
    OpenLineage Spark integration reads them, with the provider's own run ids."""
    from airflow.providers.openlineage.plugins.adapter import OpenLineageAdapter

    task_run = OpenLineageAdapter.build_task_instance_run_id(
        dag_id=ti.dag_id,
        task_id=ti.task_id,
        try_number=ti.try_number,
        logical_date=LOGICAL_DATE,
        map_index=-1,
    )
    dag_run = OpenLineageAdapter.build_dag_run_id(
        dag_id=ti.dag_id, logical_date=LOGICAL_DATE, clear_number=0
    )
    return {
        "spark.openlineage.parentJobNamespace": "default",
        "spark.openlineage.parentJobName": f"{ti.dag_id}.{ti.task_id}",
        "spark.openlineage.parentRunId": task_run,
        "spark.openlineage.rootParentJobNamespace": "default",
        "spark.openlineage.rootParentJobName": ti.dag_id,
        "spark.openlineage.rootParentRunId": dag_run,
    }
