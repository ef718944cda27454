"""Both DAGs on the local backend with ``dag.test()`` on the reference data, then a backfill
of the scoring DAG over three dates through ``airflow backfill create`` and a scheduler."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import random
import shutil
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.dags.conftest import REPO
from tests.dags.standalone import airflow, airflow_env, standalone

SHARED = REPO.parent / "shared" / "data"
DAY, LATER = dt.date(2026, 11, 28), dt.date(2026, 11, 29)
BACKFILL_DAYS = [dt.date(2026, 11, 24), dt.date(2026, 11, 25), dt.date(2026, 11, 26)]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SHARED.is_dir(), reason=f"reference data not found at {SHARED}"),
]


def midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def landing(root: Path, kind: str, day: dt.date) -> Path:
    folder = root / "landing" / kind / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shuffled_labels(source: Path, target: Path) -> None:
    """The reference rows with their churn labels shuffled: a model can learn nothing."""
    with source.open(newline="") as f:
        rows = list(csv.DictReader(f))
    labels = [r["Churn"] for r in rows]
    random.Random(3).shuffle(labels)
    with target.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**r, "Churn": label} for r, label in zip(rows, labels, strict=True))


def partition_rows(root: Path, table: str, pipeline_id: str) -> list[dict]:
    folder = root / "warehouse" / "customer_churn_ds" / table / f"pipeline_id={pipeline_id}"
    return [row for f in sorted(folder.glob("*.parquet")) for row in pq.read_table(f).to_pylist()]


@pytest.fixture(scope="module")
def churn_root(tmp_path_factory, airflow_db) -> Path:
    root = tmp_path_factory.mktemp("churn-root")
    old = {k: os.environ.get(k) for k in ("CHURN_ROOT", "CHURN_BACKEND")}
    os.environ.update(CHURN_ROOT=str(root), CHURN_BACKEND="local")
    shutil.copy(SHARED / "customer_churn_train_data.csv", landing(root, "train", DAY) / "part.csv")
    shutil.copy(SHARED / "customer_churn_score_data.csv", landing(root, "score", DAY) / "part.csv")
    shuffled_labels(
        SHARED / "customer_churn_train_data.csv", landing(root, "train", LATER) / "p.csv"
    )
    yield root
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def bag(churn_root):
    from airflow.models.dagbag import DagBag

    return DagBag(str(REPO / "dags"))


@pytest.fixture(scope="module")
def first_training(bag):
    run = bag.get_dag("customer_churn_training").test(
        logical_date=midnight(DAY), run_conf={"grid": "small", "folds": 2}
    )
    return run


def states(run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def registry(root: Path) -> dict:
    return json.loads((root / "registry" / "customer-churn-model.json").read_text())


def test_training_promotes_the_first_champion(first_training, churn_root):
    assert first_training.state == "success", states(first_training)
    doc = registry(churn_root)
    pipeline_id = "20261128-manual-000000"
    versions = {v["version"]: v for v in doc["versions"]}
    assert set(versions) == {f"{pipeline_id}-training", f"{pipeline_id}-hyperparameter-tuning"}
    champion = versions[doc["champion"]]
    assert champion["status"] == "champion"
    assert champion["metrics"]["au_pr"] == max(v["metrics"]["au_pr"] for v in versions.values())
    assert champion["metrics"]["au_pr"] > 0.5
    assert Path(champion["model_uri"], "metadata").is_dir()
    metrics = churn_root / "metrics" / "customer-churn-model" / "training" / pipeline_id
    assert {"metrics.json", "report.html", "roc_curve.png"} <= {p.name for p in metrics.iterdir()}
    training_rows = partition_rows(churn_root, "training_data", pipeline_id)
    assert len(training_rows) == 7032


def test_a_worse_run_does_not_demote_the_champion(first_training, bag, churn_root):
    before = registry(churn_root)["champion"]
    run = bag.get_dag("customer_churn_training").test(
        logical_date=midnight(LATER), run_conf={"tuning": False, "aupr_threshold": 0.2}
    )
    assert run.state == "success"
    assert states(run)["promote_champion"] == "skipped"
    doc = registry(churn_root)
    assert doc["champion"] == before
    later = {v["version"]: v for v in doc["versions"] if v["pipeline_id"].startswith("20261129")}
    assert [v["status"] for v in later.values()] == ["candidate"]
    assert next(iter(later.values()))["metrics"]["au_pr"] < 0.45


@pytest.fixture(scope="module")
def scoring_run(first_training, bag):
    return bag.get_dag("customer_churn_batch_scoring").test(logical_date=midnight(DAY))


def test_scoring_uses_the_champion_and_loses_no_row(scoring_run, churn_root):
    assert scoring_run.state == "success", states(scoring_run)
    champion = registry(churn_root)["champion"]
    pipeline_id = "20261128-manual-000000"
    scored = partition_rows(churn_root, "batch_predictions", pipeline_id)
    rejected = partition_rows(churn_root, "batch_rejects", pipeline_id)
    assert len(scored) + len(rejected) == 411
    assert {r["model_version"] for r in scored} == {champion}
    assert all(0.0 <= r["churn_probability"] <= 1.0 for r in scored)


def test_backfill_scores_each_date_into_its_own_partition(scoring_run, churn_root, tmp_path):
    from churn_ml import sample_data

    # Unpausing also starts today's scheduled run: give it input too, so it finishes.
    today = dt.datetime.now(dt.UTC).date()
    for day in sorted({*BACKFILL_DAYS, today}):
        sample_data.write_daily_partitions(
            churn_root / "landing" / "score", [day], 300, seed=11, with_label=False
        )
    env = airflow_env(18793)
    # The CLI writes to SQLite before the scheduler starts, so nothing contends for the lock.
    airflow("dags", "reserialize", env=env)
    airflow("dags", "unpause", "customer_churn_batch_scoring", env=env)
    command = ["backfill", "create", "--dag-id", "customer_churn_batch_scoring",
               "--from-date", BACKFILL_DAYS[0].isoformat(),
               "--to-date", BACKFILL_DAYS[-1].isoformat()]  # fmt: skip
    assert airflow(*command, env=env).count("Created backfill Dag run") == len(BACKFILL_DAYS)
    with standalone(env, tmp_path / "standalone.log"):
        expected = [d.strftime("%Y%m%d") for d in BACKFILL_DAYS]
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            done = [p for p in expected if partition_rows(churn_root, "batch_predictions", p)]
            if len(done) == len(expected):
                break
            time.sleep(10)
        for pipeline_id in expected:
            scored = partition_rows(churn_root, "batch_predictions", pipeline_id)
            rejected = partition_rows(churn_root, "batch_rejects", pipeline_id)
            assert len(scored) + len(rejected) == 300, pipeline_id
            assert {r["model_version"] for r in scored} == {registry(churn_root)["champion"]}
            assert {r["pipeline_execution_dt"].isoformat() for r in scored} == {
                f"{pipeline_id[:4]}-{pipeline_id[4:6]}-{pipeline_id[6:]}"
            }
