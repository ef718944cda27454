"""
### Customer churn: roll the champion back

Trigger it with the `version` to restore and the `reason` (the trigger form asks for both;
`churn registry --root ROOT promote VERSION --reason TEXT` triggers it from a shell).

1. **roll_back** makes that registered version the champion, if its model files are still
   there, and records who asked and why in the registry's history. It updates the `champion`
   asset, whose event names the latest scored day: the batch-scoring DAG re-scores that day
   with the restored champion, replacing its predictions. A version that is not registered,
   or whose files are gone, fails the task at once (no retry) in one sentence and leaves the
   champion alone.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowFailException

from churn_airflow import factory
from churn_airflow.assets import BATCH_PREDICTIONS, CHAMPION_MODEL
from churn_airflow.settings import REGISTRY_POOL
from churn_core.registry import ROLLBACK_DAG


@dag(
    dag_id=ROLLBACK_DAG,
    schedule=None,
    start_date=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=False,  # it runs only when someone triggers it
    doc_md=__doc__,
    tags=["churn", "ml", "registry"],
    default_args=factory.default_args(),  # the move is atomic: a retry is safe
    params={
        "version": Param(
            "", type="string", minLength=1, description="The registered version to restore."
        ),
        "reason": Param(
            "", type="string", minLength=3, description="Why; the registry's history keeps it."
        ),
    },
)
def customer_churn_rollback():
    @task(inlets=[BATCH_PREDICTIONS], outlets=[CHAMPION_MODEL], pool=REGISTRY_POOL)
    def roll_back(params: dict, dag_run=None, inlet_events=None, outlet_events=None) -> dict:
        from churn_airflow import promotion, settings

        who = dag_run.triggering_user_name or "an unknown user"
        try:
            event = promotion.roll_back(
                settings.environment().artifact_root, params["version"], params["reason"], who
            )
        except ValueError as refused:  # no retry registers the version or restores its files
            raise AirflowFailException(str(refused)) from None
        scored = inlet_events[BATCH_PREDICTIONS]
        day = scored[-1].extra.get("day") if scored else None
        outlet_events[CHAMPION_MODEL].extra = {
            **{key: event[key] for key in ("version", "replaced", "reason")},
            promotion.RESCORE_DAY: day,
        }
        return event

    roll_back()


customer_churn_rollback()
