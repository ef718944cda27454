"""Training job end to end: metrics.json, tables, model; reproducibility and re-runs."""

from __future__ import annotations

import datetime as dt
import math

import pytest
import train
from pyspark.ml import PipelineModel
from pyspark.ml.classification import RandomForestClassificationModel

from churn_core import layout, stages
from churn_ml import drift, storage
from churn_ml.cli import STANDALONE_ATTEMPT
from churn_ml.compiled_model import load_compiled
from churn_ml.model import canonical_order, churn_probability, split, with_label
from churn_ml.schema import CATEGORICAL_FEATURES, NUMERIC_FEATURES

pytestmark = pytest.mark.slow

METRICS = {"au_roc", "au_pr", "accuracy", "f1", "weighted_precision", "weighted_recall"}


def test_metrics_json(runs):
    document = runs.trained
    assert runs.metrics_json(runs.train_metrics) == document
    assert document["pipeline_id"] == runs.pipeline_id
    assert document["pipeline_execution_dt"] == "2026-11-29"
    assert document["operation"] == stages.TRAINING.folder
    assert document["model_uri"] == str(runs.train_model)
    assert document["params"] == {"num_trees": 10, "max_depth": 5, "max_bins": 32}
    assert document["seed"] == 42
    metrics = document["metrics"]
    assert set(metrics) == METRICS
    assert all(0.0 <= v <= 1.0 and math.isfinite(v) for v in metrics.values())
    assert metrics["au_pr"] > 0.45  # the churn base rate is about 0.27
    assert metrics["au_roc"] > 0.75
    assert metrics["accuracy"] > 0.73  # better than always answering "no"


def test_confusion_matrix_covers_the_test_rows(runs):
    document = runs.trained
    matrix = document["confusion_matrix"]
    assert matrix["labels"] == ["no", "yes"]
    (tn, fp), (fn, tp) = matrix["matrix"]
    assert tn + fp + fn + tp == document["rows"]
    test_rows = runs.table("test_predictions", operation="training", pipeline_id=runs.pipeline_id)
    assert test_rows.count() == document["rows"]
    assert 0.17 < document["rows"] / runs.preprocessed["rows_out"] < 0.23
    actual_yes = test_rows.where("label = 1").count()
    predicted_yes = test_rows.where("prediction = 1").count()
    assert (fn + tp, fp + tp) == (actual_yes, predicted_yes)
    assert document["metrics"]["accuracy"] == pytest.approx((tn + tp) / document["rows"])


def test_curves_are_bounded(runs):
    document = runs.trained
    roc, pr = document["roc_curve"], document["pr_curve"]
    assert 10 < len(roc["thresholds"]) <= 201  # with the origin: at most 202 points
    assert len(roc["fpr"]) == len(roc["tpr"]) == len(roc["thresholds"])
    assert len(pr["recall"]) == len(pr["precision"]) == len(pr["thresholds"]) <= 201
    assert roc["fpr"] == sorted(roc["fpr"]) and roc["tpr"] == sorted(roc["tpr"])
    assert roc["fpr"][-1] == roc["tpr"][-1] == 1.0
    assert pr["recall"] == roc["tpr"]


def test_feature_importances(runs):
    document = runs.trained
    importances = document["feature_importances"]
    names = [f["feature"] for f in importances]
    assert any(n.startswith("contract_vec") for n in names)
    assert {"monthly_charges", "total_charges"} <= set(names)
    assert len(names) == len(set(names)) > 40
    weights = [f["importance"] for f in importances]
    assert weights == sorted(weights, reverse=True)
    assert sum(weights) == pytest.approx(1.0)
    table = runs.table(
        "model_feature_importance_scores", operation="training", pipeline_id=runs.pipeline_id
    )
    assert {(r.feature_name, r.importance) for r in table.collect()} == {
        (f["feature"], f["importance"]) for f in importances
    }


def test_model_metrics_table(runs):
    document = runs.trained
    table = runs.table("model_metrics", operation="training", pipeline_id=runs.pipeline_id)
    assert {r.metric_name: r.metric_value for r in table.collect()} == document["metrics"]


@pytest.mark.parametrize(
    "table", ["test_predictions", "model_metrics", "model_feature_importance_scores"]
)
def test_every_row_carries_lineage(runs, table):
    assert runs.trained
    df = runs.table(table)
    keys = df.groupBy("operation", "pipeline_id", "pipeline_execution_dt").count().collect()
    assert [(r.operation, r.pipeline_id, r.pipeline_execution_dt) for r in keys] == [
        ("training", runs.pipeline_id, dt.date(2026, 11, 29))
    ]


def test_test_predictions_are_the_seeded_test_split(runs, spark):
    assert runs.trained
    predictions = runs.table("test_predictions", operation="training", pipeline_id=runs.pipeline_id)
    rows = runs.table("training_data", pipeline_id=runs.pipeline_id)
    _, test = split(rows, seed=42)
    assert {r.customer_id for r in predictions.select("customer_id").collect()} == {
        r.customer_id for r in test.select("customer_id").collect()
    }
    labels = {r.customer_id: r.churn for r in test.select("customer_id", "churn").collect()}
    for r in predictions.collect():
        assert r.label == (labels[r.customer_id] == "yes")
        assert r.prediction in (0, 1)
        assert r.prediction == (r.churn_probability > 0.5)
        assert 0.0 <= r.churn_probability <= 1.0


def test_model_is_saved_and_loadable(runs):
    assert runs.trained
    loaded = PipelineModel.load(str(runs.train_model))
    forest = loaded.stages[-1]
    assert len(loaded.stages) == 4
    assert isinstance(forest, RandomForestClassificationModel)
    assert len(forest.trees) == forest.getNumTrees == 10
    assert forest.getMaxDepth() == 5
    rows = with_label(runs.table("training_data", pipeline_id=runs.pipeline_id))
    _, test = split(rows, seed=42)
    scored = churn_probability(loaded.transform(test)).select("customer_id", "churn_probability")
    published = runs.table("test_predictions", operation="training", pipeline_id=runs.pipeline_id)
    expected = {r.customer_id: r.churn_probability for r in published.collect()}
    got = {r.customer_id: r.churn_probability for r in scored.collect()}
    assert got.keys() == expected.keys()
    assert all(got[k] == pytest.approx(expected[k], abs=1e-12) for k in got)


def test_the_profile_is_saved_inside_the_model_folder(runs):
    document = runs.trained
    profile = drift.Profile.from_json(
        (runs.train_model / layout.PROFILE_FILE).read_text(encoding="utf-8")
    )
    assert [b.feature for b in profile.features] == [*CATEGORICAL_FEATURES, *NUMERIC_FEATURES]
    train_rows = runs.preprocessed["rows_out"] - document["rows"]
    assert (profile.rows, profile.score_rows) == (train_rows, document["rows"])
    assert profile.score.feature == "churn_probability"
    assert 0.0 <= profile.score.edges[0] < profile.score.edges[-1] <= 1.0
    for bins in (*profile.features, profile.score):
        assert sum(bins.shares) == pytest.approx(1.0)
    contract = next(b for b in profile.features if b.feature == "contract")
    assert set(contract.categories) == {"Month-to-month", "One year", "Two year"}
    # The extra file changes neither loader: the scoring job still compiles the model.
    assert PipelineModel.load(str(runs.train_model))
    assert load_compiled(runs.spark, storage.normalize(str(runs.train_model))) is not None


def test_same_seed_gives_identical_results_and_a_rerun_replaces_its_rows(generated_runs, tmp_path):
    first = generated_runs.trained
    again = train.main(generated_runs.train_args(tmp_path / "model", tmp_path / "metrics"))
    for key in ("metrics", "rows", "confusion_matrix", "roc_curve", "pr_curve"):
        assert again[key] == first[key], key
    assert again["feature_importances"] == first["feature_importances"]
    predictions = generated_runs.table(
        "test_predictions", operation="training", pipeline_id=generated_runs.pipeline_id
    )
    assert predictions.count() == first["rows"]  # replaced, not appended
    metrics = generated_runs.table(
        "model_metrics", operation="training", pipeline_id=generated_runs.pipeline_id
    )
    assert metrics.count() == len(first["metrics"])


def test_another_attempt_of_the_run_never_rewrites_a_versions_rows(generated_runs, tmp_path):
    """A clear of the champion's training day is a new attempt: the champion's test
    predictions, metrics and importances stay exactly as they were."""
    assert generated_runs.trained
    run = f"operation=training/pipeline_id={generated_runs.pipeline_id}"
    tables = ("test_predictions", "model_metrics", "model_feature_importance_scores")

    def files(attempt: str) -> dict:
        return {
            t: {
                p.name: p.read_bytes()
                for p in (generated_runs.dataset / t / run / f"attempt={attempt}").iterdir()
            }
            for t in tables
        }

    before = files(STANDALONE_ATTEMPT)
    args = generated_runs.train_args(tmp_path / "model", tmp_path / "metrics")
    train.main([*args, "--attempt", "abcde-2"])
    assert files(STANDALONE_ATTEMPT) == before
    assert all(files("abcde-2")[t] for t in tables)
    rows = generated_runs.table("test_predictions", operation="training",
                                pipeline_id=generated_runs.pipeline_id)  # fmt: skip
    assert {r.attempt for r in rows.select("attempt").distinct().collect()} == {
        STANDALONE_ATTEMPT,
        "abcde-2",
    }


def test_training_rows_are_canonically_ordered_whatever_the_input_partitioning(generated_runs):
    assert generated_runs.preprocessed
    rows = generated_runs.table("training_data", pipeline_id=generated_runs.pipeline_id)

    def layout_of(df):
        return canonical_order(df, 4).rdd.glom().map(lambda p: [r.customer_id for r in p]).collect()

    assert layout_of(rows.repartition(7)) == layout_of(rows.coalesce(1))


def test_training_without_training_data_fails_and_publishes_nothing(generated_runs, tmp_path):
    assert generated_runs.preprocessed
    args = generated_runs.train_args(tmp_path / "model", tmp_path / "metrics")
    args[args.index("--pipeline-id") + 1] = "no-such-run"
    with pytest.raises(Exception, match=r"(?i)does not exist|PATH_NOT_FOUND"):
        train.main(args)
    assert not (tmp_path / "metrics").exists()
    assert not (tmp_path / "model").exists()
