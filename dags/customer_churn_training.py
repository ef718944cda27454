"""
### Customer churn: daily retrain

Every day at 00:00 UTC this DAG retrains the churn random forest on that day's raw customer
snapshot and promotes the best model to champion when it is good enough. (Midnight runs make a
backfill's `--from-date`/`--to-date` exactly the days it processes.) A drift alert of the
scoring DAG (the `customer_churn_drift` asset) also starts a run, at most one a day, on the
latest labelled snapshot, under `pipeline_id` `YYYYMMDD-drift`; `CHURN_RETRAIN_ON_DRIFT=false`
turns that off.

1. **plan_run** derives the run's identity once: the data day (the logical date, else the
   trigger time, else the `day` param), the `pipeline_id` (`YYYYMMDD`; manual runs add
   `-manual-HHMMSS`) and every id and parameter of the pipeline. A bad param fails here,
   before anything is submitted.
2. **wait_for_training_data** waits (without holding a worker slot) for the day's completion
   marker `landing/train/dt=<day>/_SUCCESS` in the data bucket (locally under `CHURN_ROOT`):
   a day is complete when its producer says so, not at its first file.
3. **run_training_pipeline** runs the compiled KFP pipeline: preprocessing, managed dataset
   registration, training, evaluation, and tuning when switched on and test AUPR reaches the
   threshold. With `CHURN_BACKEND=gcp` it is a Vertex AI pipeline of Dataproc Serverless
   batches and the task defers while it runs; locally the same pipeline runs with `kfp.local`
   on local Spark. Every attempt writes its models under folders of its own.
4. **promote_champion** registers the attempt's models. The plan passed the champion of that
   moment to the pipeline, which scored it on the run's own test rows beside each model,
   with a paired bootstrap interval of the AUPR difference. The best model becomes champion
   when its AUPR passes the threshold (a sanity floor) and the interval's lower bound is above
   zero and reaches `min_aupr_improvement`, and only if that champion is still the registry's;
   with no champion the threshold alone decides. A new champion updates the `champion` asset
   (its event's extra holds the evidence), which starts the batch-scoring DAG. Otherwise the
   task ends *skipped* and quotes both AUPRs and the interval.

**Params** (Trigger DAG w/ config): `aupr_threshold` (0-1), `tuning` (on/off), `grid`
(`small`, `default` = the lab's 27 combinations, `large`), `folds`, `pipeline_id` to process
under a chosen id, `day` to process another day's input, `min_aupr_improvement` and
`promotion_mode` (`auto`; `dry_run` decides and records the decision in the registry history
without moving the champion; `off` only registers the models).

**Re-run a day**: clear the run (or one task) in the UI. The re-run replaces that
`pipeline_id`'s partitions, never duplicates them, and submits new cloud jobs; the models it
trains are new versions, so the champion's files never change.

**Backfill** (needs a running scheduler; the DAG must be unpaused):
`airflow backfill create --dag-id customer_churn_training --from-date 2026-11-01
--to-date 2026-11-07`
(add `--reprocess-behavior completed` to redo days that already succeeded).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task

from churn_airflow import factory, settings
from churn_airflow.assets import CHAMPION_MODEL, FEATURE_DRIFT
from churn_airflow.run_ids import RUN_VALUES_KEY, identity_params
from churn_airflow.settings import REGISTRY_POOL
from churn_core import defaults
from churn_core.grids import DEFAULT_FOLDS, DEFAULT_GRID, GRIDS, MAX_FOLDS, MIN_FOLDS
from churn_core.registry import AUTO, MIN_IMPROVEMENT, MODES

DAILY = CronTriggerTimetable("0 0 * * *", timezone="UTC")


@dag(
    dag_id="customer_churn_training",
    schedule=AssetOrTimeSchedule(timetable=DAILY, assets=[FEATURE_DRIFT])
    if settings.retrain_on_drift()
    else DAILY,
    start_date=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["churn", "ml", "training", "vertex-ai", "dataproc"],
    render_template_as_native_obj=True,
    default_args=factory.default_args(),
    deadline=factory.deadline("training", "its models are not trained and judged yet"),
    params={
        "aupr_threshold": Param(
            defaults.AUPR_THRESHOLD,
            type="number",
            minimum=0,
            maximum=1,
            description="Tune and promote only at or above this test AUPR.",
        ),
        "tuning": Param(
            True, type="boolean", description="Run hyperparameter tuning when the gate passes."
        ),
        "grid": Param(
            DEFAULT_GRID, type="string", enum=list(GRIDS), description="Tuning grid size."
        ),
        "folds": Param(
            DEFAULT_FOLDS,
            type="integer",
            minimum=MIN_FOLDS,
            maximum=MAX_FOLDS,
            description="Cross-validation folds.",
        ),
        **identity_params("process"),
        "min_aupr_improvement": Param(
            MIN_IMPROVEMENT,
            type="number",
            minimum=0,
            maximum=1,
            description="Promote only when the interval's lower bound of the AUPR gain over "
            "the champion, on the same rows, is above zero and at least this.",
        ),
        "promotion_mode": Param(
            AUTO,
            type="string",
            enum=list(MODES),
            description="auto: promote when earned; dry_run: decide and record only; "
            "off: register the models only.",
        ),
    },
)
def customer_churn_training():
    @task(multiple_outputs=True)
    def plan_run(params: dict, **context) -> dict:
        from churn_airflow import drift_watch, gcs, run_ids
        from churn_core import layout, lineage, registry
        from churn_core.pipeline_params import Tuning, parameter_values

        env = settings.environment()
        run = run_ids.identify_context(context, params, asset_tag=drift_watch.DRIFT_TAG)
        if context["dag_run"].run_type == run_ids.ASSET_TRIGGERED:
            run = drift_watch.drift_retrain(env, run, params)
        tuning = Tuning.of_grid(
            params["grid"],
            enabled=params["tuning"],
            aupr_threshold=params["aupr_threshold"],
            folds=params["folds"],
        )
        first = lineage.attempt(run.run_key, 1)  # each attempt of the pipeline task adapts it
        # the champion this run's models must beat
        champion = registry.champion_to_score(env.artifact_root, gcs.client(env.artifact_root))
        values = parameter_values(env, run.pipeline_id, run.day, first, tuning, champion=champion)
        return {
            **run.as_dict(),
            "input_marker": layout.input_marker(layout.TRAIN_INPUT, run.day),
            "display_name": f"customer-churn-training-{run.pipeline_id}",
            "parameter_values": values,
        }

    @task(outlets=[CHAMPION_MODEL], pool=REGISTRY_POOL)
    def promote_champion(values: dict, params: dict, outlet_events=None) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from churn_airflow import costs, notify, promotion

        decision = promotion.promote_run(
            values,
            params["aupr_threshold"],
            params["min_aupr_improvement"],
            params["promotion_mode"],
            spent=costs.pipeline_usage(settings.environment(), values),
        )
        notify.promotion(decision)
        # Airflow records the outlet's event only when the task succeeds: every decision that
        # leaves the champion where it is (dry_run and off included) ends skipped.
        if not decision["promoted"]:
            raise AirflowSkipException(decision["reason"])
        outlet_events[CHAMPION_MODEL].extra = promotion.event_extra(decision)
        return decision

    plan = plan_run()
    wait = factory.input_sensor("wait_for_training_data", plan["input_marker"])
    run_pipeline = factory.training_pipeline("run_training_pipeline", plan)
    promote = promote_champion(run_pipeline.output[RUN_VALUES_KEY])
    plan >> wait >> run_pipeline >> promote


customer_churn_training()
