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


# --- two generated days with different churn base rates, through the real jobs ---------------

WEAK = ["--num-trees", "2", "--max-depth", "2"]
GOOD = ["--num-trees", "20", "--max-depth", "6"]


@pytest.fixture(scope="module")
def two_days(spark, tmp_path_factory) -> dict:
    """An easy day (churn base rate near 0.45) and a hard one (near 0.12), preprocessed under
    one root; then three trainings, each promoted the way the DAG does it:

    1. a weak forest on the easy day: the first champion;
    2. a good forest on the hard day, scored beside the weak champion on the hard day's rows;
    3. the weak forest on the easy day again, scored beside the good champion on the easy rows.
    """
    import preprocess
    import train

    from churn_core.pipeline_params import champion_values
    from churn_ml import sample_data

    root = tmp_path_factory.mktemp("two-days")
    warehouse = str(root / "warehouse")
    for day, shift, seed in (("easy", 1.2, 11), ("hard", -1.2, 12)):
        csv = root / f"{day}.csv"
        sample_data.write_csv(csv, 3000, seed=seed, churn_shift=shift)
        preprocess.main(["--pipeline-id", day, "--input-uri", str(csv), "--dataset-uri", warehouse])

    def train_and_promote(pid: str, attempt: str, params: list[str]) -> dict:
        values = champion_values(registry.champion_to_score(str(root)))
        doc = train.main([
            "--pipeline-id", pid, "--dataset-uri", warehouse,
            "--model-uri", layout.model_uri(str(root), stages.TRAINING, pid, attempt),
            "--metrics-uri", layout.metrics_uri(str(root), stages.TRAINING, pid, attempt),
            *params,
            "--champion-version", values["champion_version"],
            "--champion-model-uri", values["champion_model_uri"],
            "--champion-seed", values["champion_seed"],
        ])  # fmt: skip
        run = {"artifact_root": str(root), "pipeline_id": pid, "attempt": attempt}
        return {"doc": doc, "decision": promotion.promote_run(run, threshold=0.2)}

    return {
        "root": root,
        "weak": train_and_promote("easy", "aaaaa-1", WEAK),
        "good": train_and_promote("hard", "bbbbb-1", GOOD),
        "weak_again": train_and_promote("easy", "aaaaa-2", WEAK),
    }


def base_rate(doc: dict) -> float:
    (tn, fp), (fn, tp) = doc["confusion_matrix"]["matrix"]
    return (fn + tp) / (tn + fp + fn + tp)


@pytest.mark.slow
def test_the_days_differ_in_base_rate(two_days):
    assert base_rate(two_days["weak"]["doc"]) > 0.35 > 0.2 > base_rate(two_days["good"]["doc"])
    assert two_days["weak"]["decision"]["promoted"] is True  # the first champion


@pytest.mark.slow
def test_a_better_model_on_the_same_rows_is_promoted_where_the_old_rule_refused_it(two_days):
    weak, good = two_days["weak"]["doc"], two_days["good"]["doc"]
    # The old rule compared each model's AUPR on its own day's rows: the hard day's good model
    # scores below the weak champion's easy-day AUPR and would have been refused.
    assert good["metrics"]["au_pr"] < weak["metrics"]["au_pr"]
    summary = good["comparison"]
    assert summary["champion"] == "easy-training-aaaaa-1"
    assert summary["au_pr"]["champion"] < summary["au_pr"]["challenger"]
    assert summary["au_pr"]["lower"] > 0.005
    decision = two_days["good"]["decision"]
    assert decision["promoted"] is True
    assert decision["version"] == decision["champion"] == "hard-training-bbbbb-1"
    assert decision["reason"].startswith(
        f"challenger hard-training-bbbbb-1 {summary['au_pr']['challenger']:.3f} vs champion "
        f"easy-training-aaaaa-1 {summary['au_pr']['champion']:.3f} on {good['rows']:,} rows"
    )
    assert decision["reason"].endswith(": promoted")


@pytest.mark.slow
def test_a_worse_model_with_a_higher_aupr_on_its_own_easier_split_is_refused(two_days):
    good, again = two_days["good"]["doc"], two_days["weak_again"]["doc"]
    # On its own easy rows the weak model beats the good champion's recorded hard-day AUPR:
    # the old rule would have promoted it.
    assert again["metrics"]["au_pr"] > good["metrics"]["au_pr"]
    summary = again["comparison"]
    assert summary["champion"] == "hard-training-bbbbb-1"
    assert summary["au_pr"]["upper"] < 0  # on the same easy rows the champion is better
    decision = two_days["weak_again"]["decision"]
    assert decision["promoted"] is False
    assert ": not promoted (the lower bound must be above zero" in decision["reason"]
    doc = json.loads(Path(registry.registry_uri(str(two_days["root"]))).read_text())
    assert doc["champion"] == "hard-training-bbbbb-1"
    assert [h["version"] for h in doc["history"]] == [
        "easy-training-aaaaa-1",
        "hard-training-bbbbb-1",
    ]
    assert registry.find(doc, "easy-training-aaaaa-2")["comparison"]["au_pr"] == summary["au_pr"]


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
