"""
### Customer churn: batch scoring

Scores the day's customers with the champion model, every day at 00:00 UTC and again right
after the training DAG promotes a new champion (the `champion` asset). That asset-triggered
run re-scores the current UTC day under the day's `pipeline_id` with the new model, replacing
the day's earlier predictions; older days are never rewritten.

1. **plan_scoring** derives the run's identity once: the data day (the logical date, else the
   trigger time, else the `day` param) and the `pipeline_id` (`YYYYMMDD`; manual runs add
   `-manual-HHMMSS`).
2. **wait_for_scoring_input** waits (without holding a worker slot) for
   `landing/score/dt=<day>/` in the data bucket (locally under `CHURN_ROOT`).
3. **resolve_champion** reads the model registry once and pins the champion's model URI and
   version for this run; every output row records that version.
4. **submit_scoring** starts the scoring batch (Dataproc Serverless with
   `CHURN_BACKEND=gcp`, a detached local spark-submit otherwise) and returns at once. Every
   try after a clear starts a new batch; an automatic retry waits on an earlier try's batch
   that still runs or succeeded instead of scoring the day twice.
5. **wait_for_scoring** polls the batch in reschedule mode and fails with the batch's error.
6. **validate_predictions** checks scored + rejected = input rows for this `pipeline_id`, then
   updates the `batch_predictions` asset.

Outputs: `batch_predictions` and `batch_rejects` (with the reason) in `customer_churn_ds`,
one partition per `pipeline_id`; a re-run replaces its partition.

**Backfill**: `airflow backfill create --dag-id customer_churn_batch_scoring --from-date ...
--to-date ...` on a running scheduler (the DAG unpaused).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task

from churn_airflow import factory
from churn_airflow.assets import BATCH_PREDICTIONS, CHAMPION_MODEL
from churn_airflow.run_ids import identity_params


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
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": dt.timedelta(minutes=5)},
    params={
        **identity_params("score"),
        "max_reject_fraction": Param(
            0.05,
            type="number",
            minimum=0,
            maximum=1,
            description="Fail past this share of unscorable rows.",
        ),
    },
)
def customer_churn_batch_scoring():
    @task(multiple_outputs=True)
    def plan_scoring(params: dict, **context) -> dict:
        from churn_airflow import run_ids
        from churn_ml import layout

        run = run_ids.identify_context(context, params)
        prefix = layout.landing_prefix(layout.SCORE_INPUT, run.day) + "/"
        return {**run.as_dict(), "input_prefix": prefix}

    @task(multiple_outputs=True)
    def resolve_champion(plan: dict, params: dict) -> dict:
        from churn_airflow import promotion, scoring, settings

        env = settings.environment()
        champion = promotion.resolve_champion(env.artifact_root)
        day = dt.date.fromisoformat(plan["day"])
        args = scoring.scoring_args(
            env, plan["pipeline_id"], day, champion["model_uri"], champion["version"]
        )
        args += ["--max-reject-fraction", str(params["max_reject_fraction"])]
        return {
            "model_version": champion["version"],
            "batch": scoring.dataproc_batch(env, plan["pipeline_id"], args),
        }

    @task(outlets=[BATCH_PREDICTIONS])
    def validate_predictions(plan: dict, champion: dict) -> dict:
        from churn_airflow import scoring, settings

        day = dt.date.fromisoformat(plan["day"])
        counts = scoring.validate(
            settings.environment(), plan["pipeline_id"], day, champion["model_version"]
        )
        return {**counts, **plan, "model_version": champion["model_version"]}

    plan = plan_scoring()
    wait = factory.input_sensor("wait_for_scoring_input", plan["input_prefix"])
    champion = resolve_champion(plan)
    submit = factory.scoring_batch("submit_scoring", plan, champion["batch"])
    wait_for_batch = factory.scoring_sensor("wait_for_scoring", submit)
    plan >> wait >> champion >> submit >> wait_for_batch >> validate_predictions(plan, champion)


customer_churn_batch_scoring()
