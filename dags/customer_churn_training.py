"""
### Customer churn: daily retrain

Every day at 00:00 UTC this DAG retrains the churn random forest on that day's raw customer
snapshot and promotes the best model to champion when it is good enough. (Midnight runs make a
backfill's `--from-date`/`--to-date` exactly the days it processes.)

1. **wait_for_training_data** waits (without holding a worker slot) for
   `landing/train/dt=<ds>/` in the data bucket (locally under `CHURN_ROOT`).
2. **plan_run** derives the run's `pipeline_id` from its logical date (`YYYYMMDD`; manual
   runs add `-manual-HHMMSS`) and every id and parameter of the pipeline from it.
3. **run_training_pipeline** runs the compiled KFP pipeline: preprocessing, managed dataset
   registration, training, evaluation, and tuning when test AUPR reaches the threshold. With
   `CHURN_BACKEND=gcp` it is a Vertex AI pipeline of Dataproc Serverless batches and the task
   defers while it runs; locally the same pipeline runs with `kfp.local` on local Spark.
4. **promote_champion** registers the run's models and makes the best one champion only if
   its test AUPR passes the threshold and beats the current champion. A new champion
   updates the `champion` asset, which starts the batch-scoring DAG. When the run's best
   model is not promoted the task ends *skipped* and says why.

**Params** (Trigger DAG w/ config): `aupr_threshold` (0-1), `tuning` (on/off), `grid`
(`small`, `default` = the lab's 27 combinations, `large`), `folds`, and `pipeline_id` to
re-process under a chosen id.

**Re-run a day**: clear the run (or `run_training_pipeline`) in the UI; outputs of that
`pipeline_id` are replaced, never duplicated, and the cloud jobs get a new attempt id.

**Backfill** (needs a running scheduler; the DAG must be unpaused):
`airflow backfill create --dag-id customer_churn_training --from-date 2026-11-01
--to-date 2026-11-07`
(add `--reprocess-behavior completed` to redo days that already succeeded).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag, task

from churn_airflow import factory
from churn_airflow.assets import CHAMPION_MODEL
from churn_airflow.settings import REGISTRY_POOL

GRIDS = {
    "small": ("5,10", "32", "20,30"),
    "default": ("5,10,15", "24,32,40", "25,30,35"),
    "large": ("5,10,15,20", "24,32,40,64", "25,35,50"),
}


@dag(
    dag_id="customer_churn_training",
    schedule="0 0 * * *",
    start_date=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["churn", "ml", "training", "vertex-ai", "dataproc"],
    render_template_as_native_obj=True,
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": dt.timedelta(minutes=5)},
    params={
        "aupr_threshold": Param(
            0.5,
            type="number",
            minimum=0,
            maximum=1,
            description="Tune and promote only at or above this test AUPR.",
        ),
        "tuning": Param(
            True, type="boolean", description="Run hyperparameter tuning when the gate passes."
        ),
        "grid": Param("default", type="string", enum=list(GRIDS), description="Tuning grid size."),
        "folds": Param(
            5, type="integer", minimum=2, maximum=10, description="Cross-validation folds."
        ),
        "pipeline_id": Param(
            None,
            type=["null", "string"],
            pattern=r"^[a-z0-9][a-z0-9-]{0,38}$",
            description="Optional id to process under; default: from the logical date.",
        ),
    },
)
def customer_churn_training():
    wait = factory.input_sensor("wait_for_training_data", "train")

    @task
    def plan_run(params: dict, **context) -> dict:
        from churn_airflow import run_ids, settings
        from pipeline.params import Tuning, parameter_values

        when = run_ids.run_date(context)
        pipeline_id = run_ids.pipeline_id(when, context["dag_run"].run_type, params["pipeline_id"])
        depth, bins, trees = GRIDS[params["grid"]]
        threshold = params["aupr_threshold"] if params["tuning"] else 1.01  # > any AUPR: no tuning
        tuning = Tuning(threshold, depth, bins, trees, params["folds"])
        values = parameter_values(settings.environment(), pipeline_id, when.date(), tuning)
        return {"pipeline_id": pipeline_id, "parameter_values": values}

    run_pipeline = factory.training_pipeline("run_training_pipeline", "plan_run")

    @task(outlets=[CHAMPION_MODEL], pool=REGISTRY_POOL)
    def promote_champion(plan: dict, params: dict) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from churn_airflow import promotion

        decision = promotion.promote_run(plan["parameter_values"], params["aupr_threshold"])
        if not decision["promoted"]:
            raise AirflowSkipException(decision["reason"])
        return decision

    plan = plan_run()
    wait >> plan >> run_pipeline >> promote_champion(plan)


customer_churn_training()
