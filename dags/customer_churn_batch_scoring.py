"""
### Customer churn: batch scoring

Scores the day's customers with the champion model, every day at 00:00 UTC and again right
after the training DAG promotes a new champion (the `champion` asset): that run re-scores the
day under the same `pipeline_id` with the new model, replacing the earlier predictions.

1. **wait_for_scoring_input** waits (without holding a worker slot) for
   `landing/score/dt=<ds>/` in the data bucket (locally under `CHURN_ROOT`).
2. **resolve_champion** reads the model registry once and pins the champion's model URI and
   version for this run; every output row records that version.
3. **submit_scoring** starts the scoring batch (Dataproc Serverless with
   `CHURN_BACKEND=gcp`, a detached local spark-submit otherwise) and returns at once. Batch
   ids come from the run's `pipeline_id` plus the attempt, so a retry after a failed batch
   starts a new one, and a retry after a successful one does not score twice.
4. **wait_for_scoring** polls the batch in reschedule mode and fails with the batch's error.
5. **validate_predictions** checks scored + rejected = input rows for this `pipeline_id`, then
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
        "pipeline_id": Param(
            None,
            type=["null", "string"],
            pattern=r"^[a-z0-9][a-z0-9-]{0,38}$",
            description="Optional id to score under; default: from the logical date.",
        ),
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
    wait = factory.input_sensor("wait_for_scoring_input", "score")

    @task
    def resolve_champion(params: dict, **context) -> dict:
        from churn_airflow import promotion, run_ids, scoring, settings

        env = settings.environment()
        when = run_ids.run_date(context)
        pipeline_id = run_ids.pipeline_id(when, context["dag_run"].run_type, params["pipeline_id"])
        champion = promotion.resolve_champion(env.artifact_root)
        args = scoring.scoring_args(
            env, pipeline_id, when.date(), champion["model_uri"], champion["version"]
        )
        args += ["--max-reject-fraction", str(params["max_reject_fraction"])]
        return {
            "pipeline_id": pipeline_id,
            "day": when.date().isoformat(),
            "model_version": champion["version"],
            "batch": scoring.dataproc_batch(env, pipeline_id, args),
        }

    submit = factory.scoring_batch("submit_scoring", "resolve_champion")
    wait_for_batch = factory.scoring_sensor("wait_for_scoring", "submit_scoring")

    @task(outlets=[BATCH_PREDICTIONS])
    def validate_predictions(plan: dict) -> dict:
        from churn_airflow import scoring, settings

        day = dt.date.fromisoformat(plan["day"])
        counts = scoring.validate(
            settings.environment(), plan["pipeline_id"], day, plan["model_version"]
        )
        return {**counts, **plan}

    plan = resolve_champion()
    wait >> plan >> submit >> wait_for_batch >> validate_predictions(plan)


customer_churn_batch_scoring()
