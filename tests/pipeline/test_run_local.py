"""The whole local pipeline with kfp.local and spark-submit (on the reference data if present).

Three runs: a full one with tuning and no champion, a re-run of the same pipeline_id that
skips tuning and scores the first run's trained model as its champion, and one whose
preprocessing fails. Each Spark step is a separate spark-submit JVM.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
from pathlib import Path

import pytest

from churn_core import layout, lineage, stages
from churn_core.pipeline_params import Tuning
from churn_tools import lineage as lineage_cli
from churn_tools import lineage_graph
from pipeline import run_local

pytestmark = [
    pytest.mark.slow,
    # kfp.local ignores display names; the Vertex template test checks them.
    pytest.mark.filterwarnings("ignore:Task .* have no effect in the current local runner"),
]

PIPELINE_ID = "20261129"
RUN_DATE = dt.date(2026, 11, 29)
GRID = {"max_depth": {3, 5}, "max_bins": {16}, "num_trees": {5, 10}}


def small_grid(threshold: float) -> Tuning:
    return Tuning(
        aupr_threshold=threshold,
        max_depth_grid="3,5",
        max_bins_grid="16",
        num_trees_grid="5,10",
        folds=2,
    )


@pytest.fixture(scope="module")
def reference_csv(source) -> Path:
    """The reference training CSV, or generated rows on a clone without ../shared."""
    return source.train_csv


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("churn-root")


def metrics_path(root: Path, stage, attempt: str, pipeline_id: str = PIPELINE_ID) -> Path:
    return Path(layout.metrics_file(str(root), stage, pipeline_id, attempt))


def run_and_read(root: Path, tuning: Tuning, training_csv: Path, champion=None) -> dict:
    summary = run_local.run(root, PIPELINE_ID, RUN_DATE, tuning, str(training_csv), champion)
    read = {s: metrics_path(root, s, summary["attempt"]) for s in stages.MODELS}
    return {
        "summary": summary,
        "training": json.loads(read[stages.TRAINING].read_text()),
        "tuning": json.loads(read[stages.TUNING].read_text()),
    }


@pytest.fixture(scope="module")
def tuned_run(root, reference_csv) -> dict:
    """Threshold 0.0: tuning always runs."""
    return run_and_read(root, small_grid(0.0), reference_csv)


CHAMPION_VERSION = f"{PIPELINE_ID}-training-first"


@pytest.fixture(scope="module")
def skipped_run(root, reference_csv, tuned_run) -> dict:
    """Threshold 0.99 on the same root and pipeline_id: a re-run that skips tuning, with the
    first run's trained model as its champion."""
    champion = {
        "version": CHAMPION_VERSION,
        "model_uri": tuned_run["training"]["model_uri"],
        "seed": 42,
    }
    return run_and_read(root, small_grid(0.99), reference_csv, champion)


def test_tuned_run(root, tuned_run):
    summary, training, tuning = tuned_run["summary"], tuned_run["training"], tuned_run["tuning"]
    assert summary["pipeline_id"] == PIPELINE_ID
    assert summary["tuning_ran"] is True
    assert training["pipeline_id"] == tuning["pipeline_id"] == PIPELINE_ID
    assert training["operation"] == stages.TRAINING.folder
    assert tuning["operation"] == stages.TUNING.folder
    assert summary["training_au_pr"] == training["metrics"]["au_pr"]
    assert summary["tuning"] == tuning["metrics"]["au_pr"]
    assert 0.5 < training["metrics"]["au_pr"] < 1.0  # both data sets have a real signal
    # No champion: the empty champion parameters reached both jobs as "none".
    assert training["champion"] is training["comparison"] is None
    assert tuning["champion"] is tuning["comparison"] is None
    # The tuned model was chosen from the small grid, by 2-fold cross-validation.
    params = tuning["params"]
    assert summary["tuning_params"] == params
    assert set(params) == set(GRID)
    for name, allowed in GRID.items():
        assert params[name] in allowed, (name, params[name])
    assert tuning["folds"] == 2
    assert len(tuning["cv_results"]) == 4
    # Both reports with their plots, next to each run's metrics.json.
    attempt = summary["attempt"]
    assert summary["reports"] == [
        f"{root}/metrics/customer-churn-model/training/{PIPELINE_ID}/{attempt}/report.html",
        f"{root}/metrics/customer-churn-model/hyperparameter-tuning/{PIPELINE_ID}/{attempt}"
        "/report.html",
    ]
    for report in summary["reports"]:
        page = Path(report).read_text()
        assert page.count('src="data:image/png;base64,') == 4
        assert f"pipeline {PIPELINE_ID}" in page
        assert {p.name for p in Path(report).parent.glob("*.png")} == {
            "confusion_matrix.png",
            "roc_curve.png",
            "pr_curve.png",
            "feature_importances.png",
        }
    # The three Spark steps ran, each as its own spark-submit, and each measured what it spent.
    attempt = summary["attempt"]
    assert sorted(summary["usage"]) == [
        lineage.batch_id(stage, PIPELINE_ID, attempt) for stage in stages.PIPELINE
    ]
    for spent in summary["usage"].values():
        assert spent["wall_seconds"] > spent["cpu_seconds"] / os.cpu_count() > 0, spent
        assert 100 < spent["peak_memory_mb"] < 16_000, spent
    # Both models were saved where the metrics say.
    for doc in (training, tuning):
        assert Path(doc["model_uri"], "metadata").is_dir(), doc["model_uri"]


def test_tuned_run_registers_the_managed_dataset(root, tuned_run):
    record_file = root / "datasets" / f"customer-churn-{PIPELINE_ID}.json"
    record = json.loads(record_file.read_text())
    assert record["display_name"] == f"customer-churn-{PIPELINE_ID}"
    assert record["source_uri"] == f"{root}/warehouse/customer_churn_ds/training_data"
    partition = root / "warehouse" / "customer_churn_ds" / "training_data"
    assert any(partition.rglob("*.parquet")), "preprocessing wrote no training_data rows"


def test_rerun_below_threshold_skips_tuning(root, tuned_run, skipped_run):
    summary, training, tuning = (
        skipped_run["summary"],
        skipped_run["training"],
        skipped_run["tuning"],
    )
    assert summary["tuning_ran"] is False
    au_pr = training["metrics"]["au_pr"]
    # Same data, same seed: the re-run retrains to the same model quality ...
    assert au_pr == pytest.approx(tuned_run["training"]["metrics"]["au_pr"], abs=1e-9)
    reason = f"training AUPR {au_pr:.4f} is below the threshold 0.9900"
    assert tuning == {"status": "skipped", "reason": reason, "au_pr": au_pr, "threshold": 0.99}
    assert summary["tuning"] == reason
    assert summary["tuning_params"] is None
    # ... as a new attempt: the first attempt's models and metrics are untouched.
    assert summary["attempt"] != tuned_run["summary"]["attempt"]
    assert summary["reports"] == [
        f"{root}/metrics/customer-churn-model/training/{PIPELINE_ID}/{summary['attempt']}"
        "/report.html"
    ]
    first = tuned_run["summary"]["attempt"]
    assert json.loads(metrics_path(root, stages.TUNING, first).read_text()) == tuned_run["tuning"]
    assert training["model_uri"] != tuned_run["training"]["model_uri"]
    assert [key.split("-")[1] for key in sorted(summary["usage"])] == [
        "preprocessing", "training"
    ]  # fmt: skip


def test_rerun_scores_its_champion_on_the_same_rows(skipped_run, tuned_run):
    """The champion's parameters reach the training job through the pipeline: the same data
    and seed retrain the same model, so the two differ by exactly nothing."""
    training = skipped_run["training"]
    assert training["champion"]["version"] == CHAMPION_VERSION
    assert training["champion"]["model_uri"] == tuned_run["training"]["model_uri"]
    assert training["champion"]["metrics"] == training["metrics"]
    summary = training["comparison"]
    assert (summary["champion"], summary["comparable"]) == (CHAMPION_VERSION, True)
    assert (summary["rows"], summary["replicates"]) == (training["rows"], 1000)
    assert {k: summary["au_pr"][k] for k in ("delta", "lower", "upper")} == {
        "delta": 0.0, "lower": 0.0, "upper": 0.0,
    }  # fmt: skip
    # The evaluation step drew the comparison: overlaid curves, both matrices, the interval.
    (report,) = skipped_run["summary"]["reports"]
    page = Path(report).read_text()
    assert page.count('src="data:image/png;base64,') == 5
    assert f"Compared with champion <code>{CHAMPION_VERSION}</code>" in page
    assert (Path(report).parent / "comparison.png").is_file()


def test_each_step_recorded_its_lineage(root, reference_csv, tuned_run):
    """The steps' OpenLineage events, to the local default transport: the day's CSV into
    the run's training_data partition, that partition into both model versions."""
    events = lineage_cli.read_events(Path(layout.lineage_file(str(root))))
    attempt = tuned_run["summary"]["attempt"]
    graph = lineage_graph.select(
        lineage_graph.build(events), layout.model_version(PIPELINE_ID, stages.TUNING, attempt)
    )
    runs = {(r.job, r.attempt): r for r in graph.runs.values()}
    # the re-run below replaced the partition later: its preprocessing is not what tuning read
    assert sorted(runs) == sorted(
        [(stages.PREPROCESSING.name, attempt), (stages.TUNING.name, attempt)]
    )
    partition = lineage_graph.Dataset(
        "file", f"{root}/warehouse/customer_churn_ds/training_data", PIPELINE_ID
    )
    preprocessing = runs[(stages.PREPROCESSING.name, attempt)].run_id
    assert graph.inputs[preprocessing] == [
        lineage_graph.Dataset("file", str(reference_csv.resolve()))
    ]
    assert graph.outputs[preprocessing] == [partition]
    tuning = runs[(stages.TUNING.name, attempt)]
    assert tuning.model_version == layout.model_version(PIPELINE_ID, stages.TUNING, attempt)
    assert graph.inputs[tuning.run_id] == [partition]
    assert graph.outputs[tuning.run_id] == [
        lineage_graph.Dataset("file", tuned_run["tuning"]["model_uri"])
    ]
    # run by hand, not by Airflow: no parent; every step started and completed
    assert not tuning.parent
    mine = [e for e in events if e["run"]["facets"].get("churn_run", {}).get("attempt") == attempt]
    assert sorted(e["eventType"] for e in mine) == ["COMPLETE"] * 3 + ["START"] * 3


def test_failing_step_fails_the_pipeline(root, reference_csv, tmp_path, capfd):
    broken = tmp_path / "no_contract.csv"
    with reference_csv.open(newline="") as src, broken.open("w", newline="") as out:
        reader, writer = csv.reader(src), csv.writer(out)
        header = next(reader)
        drop = header.index("Contract")
        writer.writerow(header[:drop] + header[drop + 1 :])
        for _, row in zip(range(200), reader, strict=False):
            writer.writerow(row[:drop] + row[drop + 1 :])
    pipeline_id = "20261129-broken"

    with pytest.raises(RuntimeError, match="FAILURE"):
        run_local.run(root, pipeline_id, RUN_DATE, small_grid(0.0), str(broken))

    output = capfd.readouterr()
    text = output.out + output.err
    assert "missing columns ['Contract']" in text
    assert re.search(
        rf"Spark batch churn-preprocessing-{pipeline_id}-[a-z2-7]{{5}}-1 failed with exit code 3",
        text,
    )
    runs = root / "metrics" / "customer-churn-model"
    assert not list(runs.glob(f"*/{pipeline_id}/*/metrics.json"))
    assert not (root / "datasets" / f"customer-churn-{pipeline_id}.json").exists()
