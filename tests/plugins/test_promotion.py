"""Champion promotion from a run's metrics.json files, on a local artifact root."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from churn_airflow import promotion, registry
from churn_ml import layout

A = "abcde-1"


def write_metrics(
    root: Path, operation: str, pid: str, au_pr: float | None, attempt: str = A
) -> None:
    path = Path(layout.metrics_file(str(root), operation, pid, attempt))
    path.parent.mkdir(parents=True, exist_ok=True)
    if au_pr is None:
        doc = {"status": "skipped", "reason": "training AUPR 0.4000 is below the threshold"}
    else:
        doc = {
            "pipeline_id": pid,
            "pipeline_execution_dt": "2026-11-29",
            "operation": operation,
            "model_uri": layout.model_uri(str(root), operation, pid, attempt),
            "metrics": {"au_pr": au_pr, "au_roc": 0.8},
            "feature_importances": [],
        }
    path.write_text(json.dumps(doc))


def test_run_candidates_reads_both_operations(tmp_path):
    write_metrics(tmp_path, layout.TRAINING, "20261129", 0.7)
    write_metrics(tmp_path, layout.TUNING, "20261129", 0.72)
    candidates = promotion.run_candidates(str(tmp_path), "20261129", A)
    assert [(c.version, c.au_pr) for c in candidates] == [
        ("20261129-training-abcde-1", 0.7),
        ("20261129-hyperparameter-tuning-abcde-1", 0.72),
    ]
    assert candidates[0].model_uri == (
        f"{tmp_path}/models/customer-churn-model/training/20261129/{A}"
    )


def test_run_candidates_skips_skipped_tuning(tmp_path):
    write_metrics(tmp_path, layout.TRAINING, "20261129", 0.4)
    write_metrics(tmp_path, layout.TUNING, "20261129", None)
    assert [c.version for c in promotion.run_candidates(str(tmp_path), "20261129", A)] == [
        "20261129-training-abcde-1"
    ]


def test_run_candidates_without_metrics_fails(tmp_path):
    write_metrics(tmp_path, layout.TRAINING, "other", 0.7)
    with pytest.raises(
        FileNotFoundError, match=r"attempt abcde-1 of run 20261129 left no metrics\.json"
    ):
        promotion.run_candidates(str(tmp_path), "20261129", A)


def test_read_json(tmp_path):
    (tmp_path / "a.json").write_text('{"a": 1}')
    assert promotion.read_json(str(tmp_path / "a.json")) == {"a": 1}
    assert promotion.read_json(f"file://{tmp_path}/a.json") == {"a": 1}
    assert promotion.read_json(str(tmp_path / "missing.json")) is None


def test_promote_run_then_resolve_champion(tmp_path):
    root = str(tmp_path)
    with pytest.raises(LookupError, match="no champion yet"):
        promotion.resolve_champion(root)

    write_metrics(tmp_path, layout.TRAINING, "20261129", 0.7)
    write_metrics(tmp_path, layout.TUNING, "20261129", 0.75)
    decision = promotion.promote_run(
        {"artifact_root": root, "pipeline_id": "20261129", "attempt": A}, 0.5
    )
    assert decision["promoted"] is True
    assert decision["champion"] == "20261129-hyperparameter-tuning-abcde-1"

    write_metrics(tmp_path, layout.TRAINING, "20261130", 0.6)
    decision = promotion.promote_run(
        {"artifact_root": root, "pipeline_id": "20261130", "attempt": A}, 0.5
    )
    assert decision["promoted"] is False

    champion = promotion.resolve_champion(root)
    assert champion["version"] == "20261129-hyperparameter-tuning-abcde-1"
    assert champion["model_uri"] == layout.model_uri(root, layout.TUNING, "20261129", A)
    doc = json.loads(Path(registry.registry_uri(root)).read_text())
    assert sorted(v["version"] for v in doc["versions"]) == [
        "20261129-hyperparameter-tuning-abcde-1",
        "20261129-training-abcde-1",
        "20261130-training-abcde-1",
    ]


def test_an_attempt_reads_only_its_own_metrics(tmp_path):
    """Two attempts of one day: each registers its own models, never the other's."""
    write_metrics(tmp_path, layout.TRAINING, "20261129", 0.7)
    write_metrics(tmp_path, layout.TRAINING, "20261129", 0.6, attempt="abcde-2")
    (again,) = promotion.run_candidates(str(tmp_path), "20261129", "abcde-2")
    assert (again.version, again.au_pr) == ("20261129-training-abcde-2", 0.6)
