"""Both DAGs on the local backend with ``dag.test()`` (what ``make demo`` runs): the training
DAG tunes and promotes, then the scoring DAG scores with the champion and loses no row.

On the reference data when ``../shared/data`` is there, else on generated data.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from churn_tools.demo import airflow_env
from tests.conftest import data_rows
from tests.dags.conftest import REPO

DAY = dt.date(2026, 11, 28)

pytestmark = pytest.mark.slow


def midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def land(root: Path, kind: str, day: dt.date, csv: Path) -> None:
    """The day's file, then its completion marker, as an exporter lands them."""
    folder = root / "landing" / kind / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(csv, folder / "part.csv")
    (folder / "_SUCCESS").touch()


def partition_rows(root: Path, table: str, pipeline_id: str) -> list[dict]:
    folder = root / "warehouse" / "customer_churn_ds" / table / f"pipeline_id={pipeline_id}"
    return [row for f in sorted(folder.glob("*.parquet")) for row in pq.read_table(f).to_pylist()]


@pytest.fixture(scope="module")
def churn_root(tmp_path_factory, airflow_db, source) -> Path:
    root = tmp_path_factory.mktemp("churn-root")
    settings = airflow_env(root)  # as the demo runs them: dag.test() and no deadlines
    old = {k: os.environ.get(k) for k in settings if k.startswith("CHURN_")}
    os.environ.update({k: v for k, v in settings.items() if k.startswith("CHURN_")})
    land(root, "train", DAY, source.train_csv)
    land(root, "score", DAY, source.score_csv)
    yield root
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def bag(churn_root):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(REPO / "dags"))


@pytest.fixture(scope="module")
def first_training(bag):
    return bag.get_dag("customer_churn_training").test(
        logical_date=midnight(DAY), run_conf={"grid": "small", "folds": 2}
    )


def states(run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def registry(root: Path) -> dict:
    return json.loads((root / "registry" / "customer-churn-model.json").read_text())


PIPELINE_ID = "20261128-manual-000000"  # dag.test runs are manual runs with a logical date


def test_training_tunes_and_promotes_the_first_champion(first_training, churn_root, source):
    assert first_training.state == "success", states(first_training)
    doc = registry(churn_root)
    versions = {v["version"]: v for v in doc["versions"]}
    (attempt,) = {v["attempt"] for v in versions.values()}
    assert set(versions) == {
        f"{PIPELINE_ID}-training-{attempt}",
        f"{PIPELINE_ID}-hyperparameter-tuning-{attempt}",
    }
    champion = versions[doc["champion"]]
    assert champion["status"] == "champion"
    assert champion["metrics"]["au_pr"] == max(v["metrics"]["au_pr"] for v in versions.values())
    assert champion["metrics"]["au_pr"] > 0.5
    assert Path(champion["model_uri"], "metadata").is_dir()
    assert champion["model_uri"].endswith(f"/{PIPELINE_ID}/{attempt}")
    metrics = churn_root / "metrics" / "customer-churn-model" / "training" / PIPELINE_ID / attempt
    assert {"metrics.json", "report.html", "roc_curve.png"} <= {p.name for p in metrics.iterdir()}
    training_rows = partition_rows(churn_root, "training_data", PIPELINE_ID)
    assert len(training_rows) == source.rows_in - source.dropped


@pytest.fixture(scope="module")
def scoring_run(first_training, bag):
    return bag.get_dag("customer_churn_batch_scoring").test(logical_date=midnight(DAY))


def test_scoring_uses_the_champion_and_loses_no_row(scoring_run, churn_root, source):
    assert scoring_run.state == "success", states(scoring_run)
    champion = registry(churn_root)["champion"]
    scored = partition_rows(churn_root, "batch_predictions", PIPELINE_ID)
    rejected = partition_rows(churn_root, "batch_rejects", PIPELINE_ID)
    assert len(scored) + len(rejected) == data_rows(source.score_csv)
    assert len(rejected) == source.score_rejects
    assert {r["model_version"] for r in scored} == {champion}
    assert all(0.0 <= r["churn_probability"] <= 1.0 for r in scored)


def test_scoring_measures_drift_against_the_champions_profile(scoring_run, churn_root):
    """The day's customers come from the population the model learnt from: no alert, so the
    drift asset is not updated."""
    tasks = states(scoring_run)
    assert (tasks["check_drift"], tasks["publish_drift_alert"]) == ("success", "skipped")
    folder = churn_root / "metrics" / "customer-churn-model" / "batch-scoring" / PIPELINE_ID
    report = json.loads((folder / "drift.json").read_text())
    assert report["baseline"] and report["status"] != "alert"
    assert report["model_version"] == registry(churn_root)["champion"]
    assert {"drift.png", "drift.html"} <= {p.name for p in folder.iterdir()}
    drift = partition_rows(churn_root, "feature_drift", PIPELINE_ID)
    features = [f["feature"] for f in report["features"]]
    assert sorted(r["feature"] for r in drift) == sorted([*features, "churn_probability"])
    assert {r["model_version"] for r in drift} == {report["model_version"]}


def test_the_demo_summary_reads_both_runs(first_training, scoring_run, churn_root):
    """What ``make demo`` prints at its end, read from these two runs' files."""
    from churn_airflow import settings
    from churn_tools import demo

    runs = {"training": first_training, "scoring": scoring_run}
    summary = demo.summarize(settings.environment(), runs, [], churn_root / "demo.log")
    champion = registry(churn_root)["champion"]
    assert summary["champion"] == champion
    assert summary["tuning"].startswith("ran: best {")
    scoring = summary["scoring"]
    assert scoring["scored"] + scoring["rejected"] == scoring["customers_in"]
    text = demo.render(summary)
    assert f"Champion: {champion}" in text
    assert f"Drift: {summary['drift']['message']}" in text
