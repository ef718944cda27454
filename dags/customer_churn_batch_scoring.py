"""
### Customer churn: batch scoring

Scores the day's customers with the champion model, every day at 00:00 UTC and again right
after the champion changes (the `champion` asset). That asset-triggered run re-scores, under
the day's `pipeline_id`, replacing its earlier predictions: after a promotion the current UTC
day, after a rollback (`customer_churn_rollback`) the latest scored day its event names.

1. **plan_scoring** derives the run's identity once: the data day (the logical date, else the
   trigger time, else the `day` param) and the `pipeline_id` (`YYYYMMDD`; manual runs add
   `-manual-HHMMSS`).
2. **wait_for_scoring_input** waits (without holding a worker slot) for the day's completion
   marker `landing/score/dt=<day>/_SUCCESS` in the data bucket (locally under `CHURN_ROOT`).
3. **submit_scoring** reads the model registry's champion and starts the scoring batch with
   it (Dataproc Serverless with `CHURN_BACKEND=gcp`, a detached local spark-submit
   otherwise), and returns at once; every output row records that model version. The first
   try after a clear reads the champion again and starts a new batch, after cancelling an
   earlier try's batch that still runs; an automatic retry waits on an earlier try's batch
   that still runs or succeeded instead of scoring the day twice.
4. **wait_for_scoring** polls the batch in reschedule mode and fails with the batch's error.
5. **validate_predictions** checks scored + rejected = input customers for this
   `pipeline_id`, then updates the `batch_predictions` asset.
6. **check_drift** reads the drift the scoring batch measured against the champion's training
   profile (PSI per feature and for the score) and names the features past `drift_warning`
   in its log and its return value (the XCom tab). It succeeds at every level.
7. **publish_drift_alert** ends *skipped* below `drift_alert`; at an alert it updates the
   `customer_churn_drift` asset, whose extra lists the features and their PSIs (and which
   starts a retrain unless `CHURN_RETRAIN_ON_DRIFT=false`).

Outputs: `batch_predictions`, `batch_rejects` (with the reason) and `feature_drift` in
`customer_churn_ds`, one partition per `pipeline_id`; a re-run replaces its partition. The
drift report (`drift.json`, `drift.png`, `drift.html`) sits beside the run's `run_stats.json`
under `metrics/customer-churn-model/batch-scoring/<pipeline_id>/`.

**Backfill**: `airflow backfill create --dag-id customer_churn_batch_scoring --from-date ...
--to-date ...` on a running scheduler (the DAG unpaused).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task

from churn_airflow import factory
from churn_airflow.assets import BATCH_PREDICTIONS, CHAMPION_MODEL, FEATURE_DRIFT
from churn_airflow.promotion import RESCORE_DAY
from churn_airflow.run_ids import identity_params
from churn_core import defaults, psi


@dag(
    dag_id="customer_churn_batch_scoring",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 0 * * *", timezone="UTC"), assets=[CHAMPION_MODEL]
    ),
    start_date=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["churn", "ml", "scoring", "dataproc"],
    render_template_as_native_obj=True,
    default_args=factory.default_args(),
    deadline=factory.deadline("scoring", "the day's predictions are not validated yet"),
    params={
        **identity_params("score"),
        "max_reject_fraction": Param(
            defaults.MAX_REJECT_FRACTION,
            type="number",
            minimum=0,
            maximum=1,
            description="Fail past this share of unscorable customers.",
        ),
        "drift_warning": Param(
            psi.DEFAULT_WARNING,
            type="number",
            exclusiveMinimum=0,
            description="PSI at which check_drift names a feature to look at.",
        ),
        "drift_alert": Param(
            psi.DEFAULT_ALERT,
            type="number",
            exclusiveMinimum=0,
            description="PSI at which the drift asset fires (and a retrain starts).",
        ),
    },
)
def customer_churn_batch_scoring():
    @task(multiple_outputs=True)
    def plan_scoring(params: dict, **context) -> dict:
        from churn_airflow import run_ids
        from churn_core import layout

        psi.check_thresholds(params["drift_warning"], params["drift_alert"])
        events = context["triggering_asset_events"].get(CHAMPION_MODEL, [])
        rescore = [e.extra.get(RESCORE_DAY) for e in events if e.extra.get(RESCORE_DAY)]
        day = params.get("day") or (rescore[-1] if rescore else None)
        run = run_ids.identify_context(context, {**params, "day": day})
        marker = layout.input_marker(layout.SCORE_INPUT, run.day)
        return {**run.as_dict(), "input_marker": marker}

    @task(outlets=[BATCH_PREDICTIONS])
    def validate_predictions(
        plan: dict, model_version: str, batch_id: str, outlet_events=None
    ) -> dict:
        from churn_airflow import costs, scoring, settings

        env, day = settings.environment(), dt.date.fromisoformat(plan["day"])
        stats = scoring.validate(env, plan["pipeline_id"], day, model_version)
        spent = costs.batch_usage(env, batch_id)
        scoring.record_usage(env, stats, spent)
        scored = {"day": plan["day"], "pipeline_id": plan["pipeline_id"],
                  "model_version": model_version}  # fmt: skip
        outlet_events[BATCH_PREDICTIONS].extra = scored  # a rollback re-scores this day
        return {**stats.counts(), **plan, "model_version": model_version, "usage": spent}

    @task
    def check_drift(plan: dict) -> dict:
        from churn_airflow import drift_watch, notify, settings

        summary = drift_watch.check(settings.environment().artifact_root, plan)
        notify.drift(summary, plan)
        return summary

    @task(outlets=[FEATURE_DRIFT])
    def publish_drift_alert(drift: dict, outlet_events=None) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        # Airflow records the outlet's event only when the task succeeds: no alert, a skip.
        if drift["alert"] is None:
            raise AirflowSkipException(f"no drift alert: {drift['status']}")
        outlet_events[FEATURE_DRIFT].extra = drift["alert"]
        return drift["alert"]

    plan = plan_scoring()
    wait = factory.input_sensor("wait_for_scoring_input", plan["input_marker"])
    submit = factory.scoring_batch("submit_scoring", plan)
    wait_for_batch = factory.scoring_sensor("wait_for_scoring", submit)
    validated = validate_predictions(
        plan, submit.output["model_version"], submit.output["batch_id"]
    )
    drift = check_drift(plan)
    plan >> wait >> submit >> wait_for_batch >> validated >> drift
    publish_drift_alert(drift)


customer_churn_batch_scoring()
