"""The scoring batch request and its output check (pure, apart from reading and counting)."""

from __future__ import annotations

import dataclasses
import datetime as dt

from churn_airflow import gcs, lineage_parent
from churn_core import batches, bigquery_sql, documents, layout, psi
from churn_core.layout import BATCH_PREDICTIONS, BATCH_REJECTS
from churn_core.run_records import RunStats
from churn_core.stages import SCORING


def scoring_args(
    env,
    pipeline_id: str,
    day: dt.date,
    model_uri: str,
    model_version: str,
    *,
    attempt: str,
    drift_warning: float = psi.DEFAULT_WARNING,
    drift_alert: float = psi.DEFAULT_ALERT,
) -> list:
    root = env.artifact_root
    return [
        "--pipeline-id", pipeline_id,
        "--day", day.isoformat(),
        "--input-uri", f"{env.scoring_data_root}/{layout.day_partition(day)}",
        "--model-uri", model_uri,
        "--model-version", model_version,
        "--dataset-uri", env.dataset_uri,
        "--attempt", attempt,
        "--commit-record-uri", layout.commit_record(root, SCORING, pipeline_id),
        "--stats-uri", layout.scoring_stats_file(root, pipeline_id),
        "--drift-uri", layout.drift_folder(root, pipeline_id),
        "--drift-warning", str(drift_warning),
        "--drift-alert", str(drift_alert),
    ]  # fmt: skip


def dataproc_batch(env, pipeline_id: str, args: list) -> dict:
    """The Dataproc Serverless Batch of one scoring run (a dict that parses as ``Batch``).

    Composer's account submits it; it runs as the scoring account all the same, which may
    read models but write only predictions (docs/gcp.md). No history server: ``Environment``
    refuses one on the runtimes the jobs run on.
    """
    runs_as = {**vars(env), "service_account": env.scoring_service_account}
    return batches.pyspark_batch(runs_as, SCORING.job, args, pipeline_id, as_service_account=True)


def champion_batch(env, plan: dict, context, attempt: str) -> dict:
    """The Batch of a new ``attempt`` that scores the plan's day with the registry's champion
    of this moment (the submit task builds it for each new attempt, so a cleared submit scores
    with a rolled-back champion), under the submit task's OpenLineage run; ``context`` is the
    task's, with the scoring DAG's params."""
    from churn_airflow.promotion import resolve_champion

    params = context["params"]
    champion = resolve_champion(env.artifact_root)
    args = scoring_args(
        env,
        plan["pipeline_id"],
        dt.date.fromisoformat(plan["day"]),
        champion["model_uri"],
        champion["version"],
        attempt=attempt,
        drift_warning=params["drift_warning"],
        drift_alert=params["drift_alert"],
    )
    args += ["--max-reject-fraction", str(params["max_reject_fraction"])]
    batch = dataproc_batch(env, plan["pipeline_id"], args)
    properties = batch["runtime_config"]["properties"]
    batch["runtime_config"]["properties"] = lineage_parent.spark_properties(properties, context)
    return batch


def model_version(batch: dict) -> str:
    """The model version a scoring Batch scores with."""
    args = batch["pyspark_batch"]["args"]
    return args[args.index("--model-version") + 1]


def check_run(stats: RunStats | None, tables: dict[str, int], run: dict):
    """The job's own counts agree with the rows its partition holds, and something was scored:
    one prediction or one reject per input customer (``churn_ml.customers``).

    ``stats`` is the job's run_stats.json (None if it wrote none); ``tables`` the rows of the
    run's partition in each output table; ``run`` the pipeline_id, pipeline_execution_dt and
    model_version this run scored with.
    """
    if stats is None:
        raise ValueError(f"scoring run {run['pipeline_id']} left no run stats: did it finish?")
    if (earlier := stats.identity()) != run:
        raise ValueError(f"the run stats are of {earlier}, not of this run {run}")
    customers, scored, rejected = stats.customers_in, stats.scored, stats.rejected
    if scored + rejected != customers:
        raise ValueError(
            f"scoring lost customers: {customers} in, {scored} scored + {rejected} rejected"
        )
    found = {BATCH_PREDICTIONS: scored, BATCH_REJECTS: rejected}
    if tables != found:
        raise ValueError(f"the job counted {found} rows but the tables hold {tables}")
    if scored == 0:
        raise ValueError(f"no predictions were written for {customers} input customers")
    return stats.counts()


def read_stats(env, pipeline_id: str) -> RunStats | None:
    """A scoring run's run_stats.json; None if the run wrote none."""
    uri = layout.scoring_stats_file(env.artifact_root, pipeline_id)
    doc = documents.read(uri, gcs.client(uri))
    return None if doc is None else RunStats.from_json(doc, uri)


def validate(env, pipeline_id: str, day: dt.date, model_version: str) -> RunStats:
    """Check a finished scoring run from its stats and its tables (input files are not read);
    returns the stats it checked."""
    stats = read_stats(env, pipeline_id)
    count = count_bigquery if env.dataset_uri.startswith("bq://") else count_parquet
    tables = {t: count(env, t, pipeline_id, day) for t in (BATCH_PREDICTIONS, BATCH_REJECTS)}
    run = {
        "pipeline_id": pipeline_id,
        "pipeline_execution_dt": day.isoformat(),
        "model_version": model_version,
    }
    check_run(stats, tables, run)
    return stats


def record_usage(env, stats: RunStats, spent: dict | None) -> None:
    """Add what the scoring batch spent (``costs.batch_usage``) to the run's stats."""
    uri = layout.scoring_stats_file(env.artifact_root, stats.pipeline_id)
    documents.write(uri, dataclasses.replace(stats, usage=spent).to_json(), gcs.client(uri))


def count_parquet(env, table: str, pipeline_id: str, day: dt.date) -> int:
    """Rows of the run's partition, from the Parquet footers (locally one folder per run)."""
    from pathlib import Path

    import pyarrow.parquet as pq

    folder = Path(layout.table_uri(env.dataset_uri, table)) / f"pipeline_id={pipeline_id}"
    return sum(pq.ParquetFile(f).metadata.num_rows for f in folder.glob("*.parquet"))


def count_bigquery(env, table: str, pipeline_id: str, day: dt.date) -> int:
    """Rows of the run's partition: a COUNT pruned to the run's day."""
    from airflow.providers.google.cloud.hooks.bigquery import BigQueryHook

    target = bigquery_sql.bigquery_table(layout.table_uri(env.dataset_uri, table))
    keys = {"pipeline_id": pipeline_id}
    job = (
        BigQueryHook(use_legacy_sql=False)
        .get_client(project_id=target.project)
        .query(
            bigquery_sql.count_rows_sql(target, list(keys)),
            job_config=bigquery_sql.query_config(bigquery_sql.run_parameters(keys, day)),
        )
    )
    return next(iter(job.result()))[0]
