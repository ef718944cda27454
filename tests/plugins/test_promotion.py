"""Champion promotion from a run's metrics.json files, on a local artifact root."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from churn_airflow import promotion
from churn_core import documents, layout, registry, stages

A = "abcde-1"


def write_metrics(
    root: Path,
    stage: stages.Stage,
    pid: str,
    au_pr: float | None,
    attempt: str = A,
    comparison: dict | None = None,
) -> None:
    path = Path(layout.metrics_file(str(root), stage, pid, attempt))
    path.parent.mkdir(parents=True, exist_ok=True)
    if au_pr is None:
        doc = {"status": "skipped", "reason": "training AUPR 0.4000 is below the threshold"}
    else:
        doc = {
            "pipeline_id": pid,
            "pipeline_execution_dt": "2026-11-29",
            "operation": stage.folder,
            "model_uri": layout.model_uri(str(root), stage, pid, attempt),
            "metrics": {"au_pr": au_pr, "au_roc": 0.8},
            "seed": 42,
            "feature_importances": [],
            "comparison": comparison,
        }
    path.write_text(json.dumps(doc))


def test_run_candidates_reads_both_operations(tmp_path):
    write_metrics(tmp_path, stages.TRAINING, "20261129", 0.7)
    write_metrics(tmp_path, stages.TUNING, "20261129", 0.72)
    candidates = promotion.run_candidates(str(tmp_path), "20261129", A)
    assert [(c.version, c.au_pr) for c in candidates] == [
        ("20261129-training-abcde-1", 0.7),
        ("20261129-hyperparameter-tuning-abcde-1", 0.72),
    ]
    assert candidates[0].model_uri == (
        f"{tmp_path}/models/customer-churn-model/training/20261129/{A}"
    )


def test_run_candidates_skips_skipped_tuning(tmp_path):
    write_metrics(tmp_path, stages.TRAINING, "20261129", 0.4)
    write_metrics(tmp_path, stages.TUNING, "20261129", None)
    assert [c.version for c in promotion.run_candidates(str(tmp_path), "20261129", A)] == [
        "20261129-training-abcde-1"
    ]


def test_run_candidates_without_metrics_fails(tmp_path):
    write_metrics(tmp_path, stages.TRAINING, "other", 0.7)
    with pytest.raises(
        FileNotFoundError, match=r"attempt abcde-1 of run 20261129 left no metrics\.json"
    ):
        promotion.run_candidates(str(tmp_path), "20261129", A)


def test_read_json(tmp_path):
    (tmp_path / "a.json").write_text('{"a": 1}')
    assert documents.read(str(tmp_path / "a.json")) == {"a": 1}
    assert documents.read(f"file://{tmp_path}/a.json") == {"a": 1}
    assert documents.read(str(tmp_path / "missing.json")) is None


def test_promote_run_then_resolve_champion(tmp_path):
    root = str(tmp_path)
    with pytest.raises(LookupError, match="no champion yet"):
        promotion.resolve_champion(root)

    write_metrics(tmp_path, stages.TRAINING, "20261129", 0.7)
    write_metrics(tmp_path, stages.TUNING, "20261129", 0.75)
    decision = promotion.promote_run(
        {"artifact_root": root, "pipeline_id": "20261129", "attempt": A}, 0.5
    )
    assert decision["promoted"] is True
    assert decision["champion"] == "20261129-hyperparameter-tuning-abcde-1"

    champion = "20261129-hyperparameter-tuning-abcde-1"
    write_metrics(tmp_path, stages.TRAINING, "20261130", 0.6, comparison=noise(champion))
    decision = promotion.promote_run(
        {"artifact_root": root, "pipeline_id": "20261130", "attempt": A}, 0.5
    )
    assert decision["promoted"] is False
    assert decision["reason"].endswith("not promoted (the lower bound must be above zero and "
                                       "reach +0.005)")  # fmt: skip

    champion = promotion.resolve_champion(root)
    assert champion["version"] == "20261129-hyperparameter-tuning-abcde-1"
    assert champion["model_uri"] == layout.model_uri(root, stages.TUNING, "20261129", A)
    doc = json.loads(Path(registry.registry_uri(root)).read_text())
    assert sorted(v["version"] for v in doc["versions"]) == [
        "20261129-hyperparameter-tuning-abcde-1",
        "20261129-training-abcde-1",
        "20261130-training-abcde-1",
    ]


def noise(champion: str, lower: float = -0.02) -> dict:
    """A comparison with ``champion`` on the run's rows whose interval reaches zero."""
    return {
        "champion": champion,
        "comparable": True,
        "rows": 1409,
        "replicates": 1000,
        "confidence": 0.95,
        "au_pr": {"challenger": 0.6, "champion": 0.59, "delta": 0.01, "lower": lower,
                  "upper": 0.04},
        "au_roc": {"challenger": 0.8, "champion": 0.79, "delta": 0.01, "lower": -0.01,
                   "upper": 0.03},
    }  # fmt: skip


def promote_day(root: Path, pid: str, au_pr: float, comparison=None, **kwargs) -> dict:
    write_metrics(root, stages.TRAINING, pid, au_pr, comparison=comparison)
    values = {"artifact_root": str(root), "pipeline_id": pid, "attempt": A}
    return promotion.promote_run(values, 0.5, **kwargs)


def test_champion_to_score(tmp_path):
    assert registry.champion_to_score(str(tmp_path)) is None
    promote_day(tmp_path, "20261129", 0.7)
    assert registry.champion_to_score(str(tmp_path)) == {
        "version": "20261129-training-abcde-1",
        "model_uri": layout.model_uri(str(tmp_path), stages.TRAINING, "20261129", A),
        "seed": 42,
    }


def test_champion_to_score_finds_the_seed_of_an_older_entry_in_its_metrics(tmp_path):
    promote_day(tmp_path, "20261129", 0.7)
    path = Path(registry.registry_uri(str(tmp_path)))
    doc = json.loads(path.read_text())
    del doc["versions"][0]["seed"]  # registered before seeds were recorded
    path.write_text(json.dumps(doc))
    assert registry.champion_to_score(str(tmp_path))["seed"] == 42
    Path(layout.metrics_file(str(tmp_path), stages.TRAINING, "20261129", A)).unlink()
    assert registry.champion_to_score(str(tmp_path))["seed"] is None


def test_promote_run_gives_the_report_and_the_asset_event_extra(tmp_path):
    first = promote_day(tmp_path, "20261129", 0.7)
    assert first["report"] == (
        f"{tmp_path}/metrics/customer-churn-model/training/20261129/{A}/report.html"
    )
    assert promotion.event_extra(first) == {
        "version": "20261129-training-abcde-1",
        "reason": first["reason"],
        "report": first["report"],
    }
    second = promote_day(
        tmp_path, "20261130", 0.62, noise("20261129-training-abcde-1", lower=0.004),
        min_improvement=0.001,
    )  # fmt: skip
    assert second["promoted"] is True
    assert promotion.event_extra(second) == {
        "version": "20261130-training-abcde-1",
        "reason": second["reason"],
        "report": f"{tmp_path}/metrics/customer-churn-model/training/20261130/{A}/report.html",
        "replaced": "20261129-training-abcde-1",
        "rows": 1409,
        "challenger_au_pr": 0.6,
        "champion_au_pr": 0.59,
        "au_pr_delta": 0.01,
        "au_pr_interval": [0.004, 0.04],
        "confidence": 0.95,
    }
    json.dumps(promotion.event_extra(second))  # an Asset event's extra is JSON


def test_dry_run_leaves_the_champion_pointer_and_records_the_decision(tmp_path):
    promote_day(tmp_path, "20261129", 0.7)
    before = json.loads(Path(registry.registry_uri(str(tmp_path))).read_text())
    better = noise("20261129-training-abcde-1", lower=0.03)
    decision = promote_day(tmp_path, "20261130", 0.66, better, mode="dry_run")
    assert (decision["promoted"], decision["would_promote"]) == (False, True)
    after = json.loads(Path(registry.registry_uri(str(tmp_path))).read_text())
    assert after["champion"] == before["champion"] == "20261129-training-abcde-1"
    assert after["history"][:-1] == before["history"]
    assert after["history"][-1]["mode"] == "dry_run"
    assert after["history"][-1]["would_promote"] is True
    assert promotion.resolve_champion(str(tmp_path))["version"] == "20261129-training-abcde-1"


def test_an_attempt_reads_only_its_own_metrics(tmp_path):
    """Two attempts of one day: each registers its own models, never the other's."""
    write_metrics(tmp_path, stages.TRAINING, "20261129", 0.7)
    write_metrics(tmp_path, stages.TRAINING, "20261129", 0.6, attempt="abcde-2")
    (again,) = promotion.run_candidates(str(tmp_path), "20261129", "abcde-2")
    assert (again.version, again.au_pr) == ("20261129-training-abcde-2", 0.6)


def test_a_rollback_restores_a_version_whose_files_exist_and_says_who_and_why(tmp_path):
    promote_day(tmp_path, "20261129", 0.7)
    promote_day(tmp_path, "20261130", 0.8, noise("20261129-training-abcde-1", lower=0.05))
    old = "20261129-training-abcde-1"
    (Path(layout.model_uri(str(tmp_path), stages.TRAINING, "20261129", A)) / "metadata").mkdir(
        parents=True
    )
    event = promotion.roll_back(str(tmp_path), old, "EMEA over-predicted", "ana")
    assert (event["version"], event["replaced"]) == (old, "20261130-training-abcde-1")
    assert event["reason"] == "rollback by ana: EMEA over-predicted"
    assert promotion.resolve_champion(str(tmp_path))["version"] == old


def test_a_rollback_to_a_version_whose_files_are_gone_changes_nothing(tmp_path):
    promote_day(tmp_path, "20261129", 0.7)
    promote_day(tmp_path, "20261130", 0.8, noise("20261129-training-abcde-1", lower=0.05))
    before = Path(registry.registry_uri(str(tmp_path))).read_text()
    model = layout.model_uri(str(tmp_path), stages.TRAINING, "20261129", A)
    with pytest.raises(ValueError) as refused:
        promotion.roll_back(str(tmp_path), "20261129-training-abcde-1", "x", "ana")
    assert str(refused.value) == (
        f"version 20261129-training-abcde-1's model {model} is missing: restore its files or "
        "roll back to another version"
    )
    with pytest.raises(ValueError, match=r"^version 'nope' is not registered; known: \["):
        promotion.roll_back(str(tmp_path), "nope", "x", "ana")
    assert Path(registry.registry_uri(str(tmp_path))).read_text() == before
