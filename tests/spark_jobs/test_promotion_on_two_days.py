"""Promotion on the same rows, through the real jobs: two generated days with different churn
base rates, trained and promoted the way the DAG does it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from churn_airflow import promotion
from churn_core import layout, registry, stages

pytestmark = pytest.mark.slow

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


def test_the_days_differ_in_base_rate(two_days):
    assert base_rate(two_days["weak"]["doc"]) > 0.35 > 0.2 > base_rate(two_days["good"]["doc"])
    assert two_days["weak"]["decision"]["promoted"] is True  # the first champion


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
