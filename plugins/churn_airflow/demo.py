"""The main job on the embedded default: both DAGs end to end with ``airflow dags test``.

Seeds sample data for a day, runs the training DAG then the scoring DAG on a project-local
AIRFLOW_HOME (SQLite) and prints what happened. ``make demo`` runs it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

from churn_airflow import airflow_setup

REPO = Path(__file__).resolve().parents[2]


def airflow_env(root: Path) -> dict[str, str]:
    """A project-local Airflow: SQLite home under .airflow, this repo's DAGs and plugins."""
    paths = [str(REPO), str(REPO / "spark_jobs"), str(REPO / "plugins")]
    return {
        "AIRFLOW_HOME": os.environ.get("AIRFLOW_HOME", str(REPO / ".airflow")),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "CHURN_BACKEND": "local",
        "CHURN_ROOT": str(root),
        "PYTHONPATH": os.pathsep.join(paths),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--date", type=dt.date.fromisoformat, default=dt.datetime.now(dt.UTC).date()
    )
    parser.add_argument("--rows", type=int, default=20_000, help="training rows to generate")
    parser.add_argument("--grid", default="small", choices=["small", "default", "large"])
    parser.add_argument(
        "--root", type=Path, default=Path(os.environ.get("CHURN_ROOT", REPO / ".churn"))
    )
    args = parser.parse_args(argv)
    env = airflow_env(args.root.resolve())
    if "AIRFLOW_HOME" not in os.environ:  # not yet configured: re-run in the configured env
        airflow_setup.main({**os.environ, **env})
        os.execve(
            sys.executable,
            [sys.executable, "-m", "churn_airflow.demo", *(argv or sys.argv[1:])],
            {**os.environ, **env},
        )
    run(args)


def run(args) -> None:
    from airflow.models.dagbag import DagBag

    from churn_airflow import promotion, registry, run_ids, settings
    from churn_ml import layout, sample_data

    env = settings.environment()
    day = args.date.isoformat()
    sample_data.write_daily_partitions(env.training_data_root, [day], args.rows)
    sample_data.write_daily_partitions(
        env.scoring_data_root, [day], args.rows // 4, with_label=False
    )
    bag = DagBag(str(REPO / "dags"))
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    when = dt.datetime.combine(args.date, dt.time(), tzinfo=dt.UTC)
    states = {}
    for dag_id, conf in (
        ("customer_churn_training", {"grid": args.grid, "folds": 3}),
        ("customer_churn_batch_scoring", {}),
    ):
        dag_run = bag.get_dag(dag_id).test(logical_date=when, run_conf=conf)
        states[dag_id] = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
        if dag_run.state != "success":
            print(json.dumps(states, indent=2))
            raise SystemExit(f"{dag_id} failed: see the task logs above")
    run = run_ids.identify(
        dag_run.run_id, dag_run.run_type, dag_run.logical_date, dag_run.run_after
    )
    doc = registry.store(env.artifact_root).read()
    models = [v for v in doc["versions"] if v["pipeline_id"] == run.pipeline_id]
    attempt = models[-1]["attempt"]
    stats = promotion.read_json(layout.scoring_stats_file(env.artifact_root, run.pipeline_id))
    reports = [
        Path(layout.metrics_uri(env.artifact_root, op, run.pipeline_id, attempt), "report.html")
        for op in layout.OPERATIONS
    ]
    summary = {
        "pipeline_id": run.pipeline_id,
        "tasks": states,
        "models": {
            v["version"]: {"test_au_pr": round(v["metrics"]["au_pr"], 4), "status": v["status"]}
            for v in models
        },
        "tuning": promotion.read_json(
            layout.metrics_file(env.artifact_root, layout.TUNING, run.pipeline_id, attempt)
        ).get("reason", "ran"),
        "champion": registry.champion(doc)["version"],
        "scoring": {key: stats[key] for key in ("rows_in", "scored", "rejected")},
        "reports": [str(r) for r in reports if r.exists()],
        "registry": registry.registry_uri(env.artifact_root),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
