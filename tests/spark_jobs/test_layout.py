"""Artifact and table locations (pure Python)."""

from __future__ import annotations

import pytest

from churn_core import layout, stages
from churn_ml import storage


def test_model_and_metrics_uris():
    root = "gs://churn-bucket/"
    assert layout.model_uri(root, stages.TRAINING, "20261129", "k7f2q-1") == (
        "gs://churn-bucket/models/customer-churn-model/training/20261129/k7f2q-1"
    )
    assert layout.metrics_uri("/tmp/.churn", stages.TUNING, "20261129", "k7f2q-2") == (
        "/tmp/.churn/metrics/customer-churn-model/hyperparameter-tuning/20261129/k7f2q-2"
    )
    assert layout.metrics_file("/r", stages.TRAINING, "p1", "abcde-1") == (
        "/r/metrics/customer-churn-model/training/p1/abcde-1/metrics.json"
    )


def test_only_a_model_stage_has_model_folders():
    with pytest.raises(ValueError, match="scoring saves no model"):
        layout.model_uri("/r", stages.SCORING, "p1", "abcde-1")
    with pytest.raises(ValueError, match="unknown operation 'scoring'"):
        stages.of_operation("scoring")
    assert stages.of_operation("hyperparameter-tuning") is stages.TUNING


def test_table_uri():
    bq = layout.table_uri("bq://my-project.customer_churn_ds", "training_data")
    assert bq == "bq://my-project.customer_churn_ds.training_data"
    assert storage.bigquery_table(bq).table == "training_data"
    assert layout.table_uri("/w/customer_churn_ds/", "batch_predictions") == (
        "/w/customer_churn_ds/batch_predictions"
    )


def test_gcs_object():
    assert layout.gcs_object("gs://model-b/registry/doc.json") == ("model-b", "registry/doc.json")
    assert layout.gcs_object("gs://data-b") == ("data-b", "")
    with pytest.raises(ValueError, match="is not a gs:// URI"):
        layout.gcs_object("/srv/churn/registry/doc.json")
