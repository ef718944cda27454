"""Batch scoring job end to end, re-runs and bad input."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import score
from pyspark.testing import assertDataFrameEqual

from churn_ml import commit_record, sample_data, storage
from churn_ml.champion import ChampionUnavailable
from churn_ml.cli import InputError
from churn_ml.schema import RAW_SCORE_COLUMNS


def paths_naming(root: Path, pipeline_id: str) -> list[Path]:
    if not root.exists():
        return []
    return [p for p in root.rglob("*") if f"pipeline_id={pipeline_id}" in str(p)]


@pytest.mark.slow
def test_scored_plus_rejected_is_the_input(runs):
    stats = runs.scored
    source = runs.source
    assert stats == {
        "pipeline_id": runs.pipeline_id,
        "pipeline_execution_dt": runs.execution_dt,
        "model_version": runs.model_version,
        "rows_in": source.score_rows,
        "repeated_headers": 0,
        "customers_in": source.score_rows,  # one row per customer in both sources
        "scored": source.score_rows - source.score_rejects,
        "rejected": source.score_rejects,
    }
    predictions = runs.table("batch_predictions", pipeline_id=runs.pipeline_id)
    rejects = runs.table("batch_rejects", pipeline_id=runs.pipeline_id)
    assert predictions.count() == stats["scored"]
    assert rejects.count() == stats["rejected"]
    ids = predictions.select("customer_id").union(rejects.select("customer_id"))
    assert ids.distinct().count() == source.score_rows


@pytest.mark.slow
def test_reference_scoring_counts(reference_runs):
    assert reference_runs.scored["rows_in"] == 411


@pytest.mark.slow
def test_generated_rejects_name_their_reason(generated_runs):
    stats = generated_runs.scored
    assert stats["rejected"] > 0  # about 2% of the generated rows have no TotalCharges
    rejects = generated_runs.table("batch_rejects", pipeline_id=generated_runs.pipeline_id)
    reasons = {
        r.reject_reason: r["count"] for r in rejects.groupBy("reject_reason").count().collect()
    }
    assert reasons == {"missing total_charges": stats["rejected"]}


@pytest.mark.slow
@pytest.mark.parametrize("table", ["batch_predictions", "batch_rejects"])
def test_every_row_carries_lineage_and_model_version(runs, table):
    assert runs.scored
    df = runs.table(table)
    keys = df.groupBy("pipeline_id", "pipeline_execution_dt", "model_version").count().collect()
    if table == "batch_rejects" and not runs.scored["rejected"]:
        assert keys == []
        return
    assert [(r.pipeline_id, r.pipeline_execution_dt, r.model_version) for r in keys] == [
        (runs.pipeline_id, dt.date(2026, 11, 29), runs.model_version)
    ]


@pytest.mark.slow
def test_predictions_are_probabilities_of_the_champion(runs):
    assert runs.scored
    predictions = runs.table("batch_predictions", pipeline_id=runs.pipeline_id)
    assert {"customer_id", "tenure_group", "prediction", "churn_probability"} <= set(
        predictions.columns
    )
    assert "churn" not in predictions.columns
    rows = predictions.select("prediction", "churn_probability").collect()
    assert all(0.0 <= r.churn_probability <= 1.0 for r in rows)
    assert all(r.prediction == (r.churn_probability > 0.5) for r in rows)
    share = sum(r.prediction for r in rows) / len(rows)
    assert 0.02 < share < 0.6  # the model tells customers apart


@pytest.mark.slow
def test_rescoring_replaces_the_run_and_a_new_id_adds_a_partition(generated_runs, spark, tmp_path):
    assert generated_runs.trained
    dataset = tmp_path / "warehouse"
    table = str(dataset / "batch_predictions")
    first = score.main(generated_runs.score_args(dataset, "20261129"))
    before = storage.read_table(spark, table, {"pipeline_id": "20261129"})
    before = before.cache()
    assert before.count() == first["scored"]
    again = score.main(generated_runs.score_args(dataset, "20261129"))
    assert again == first
    after = storage.read_table(spark, table, {"pipeline_id": "20261129"})
    assertDataFrameEqual(after, before)
    before.unpersist()
    assert storage.read_table(spark, table).count() == first["scored"]
    rejects = storage.read_table(spark, str(dataset / "batch_rejects")).count()
    assert rejects == first["rejected"]

    score.main(generated_runs.score_args(dataset, "20261130"))
    counts = storage.read_table(spark, table).groupBy("pipeline_id").count().collect()
    assert {r.pipeline_id: r["count"] for r in counts} == {
        "20261129": first["scored"],
        "20261130": first["scored"],
    }


# --- Bad input ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad_score_inputs(tmp_path_factory, generated_train_csv) -> dict[str, tuple[Path, str]]:
    folder = tmp_path_factory.mktemp("bad_score_inputs")
    header = ",".join(RAW_SCORE_COLUMNS)
    sample_data.write_csv(
        folder / "blanks.csv", 200, seed=5, with_label=False, blank_total_charges_fraction=0.3
    )
    (folder / "header.csv").write_text(header + "\n", encoding="utf-8")
    (folder / "empty.csv").write_text("", encoding="utf-8")
    lines = (folder / "blanks.csv").read_text(encoding="utf-8").splitlines()
    (folder / "short.csv").write_text("\n".join([*lines[:20], "0001-SHORT,Male,0"]) + "\n")
    (folder / "missing.csv").write_text(header.replace(",Contract", "") + "\n")
    return {
        "labelled training file": (generated_train_csv, r"unexpected columns \['Churn'\]"),
        "missing column": (folder / "missing.csv", r"missing columns \['Contract'\]"),
        "too many rejects": (
            folder / "blanks.csv",
            r"customers cannot be scored, more than the allowed fraction 0.05: "
            r"\{'missing total_charges': \d+\}",
        ),
        "header only": (folder / "header.csv", r"header but no rows"),
        "empty file": (folder / "empty.csv", r"the input is empty"),
        "malformed line": (folder / "short.csv", r"malformed CSV lines, e.g. '0001-SHORT,Male,0'"),
        "nonexistent input": (folder / "nope.csv", r"nope.csv does not exist"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "labelled training file",
        "missing column",
        "too many rejects",
        "header only",
        "empty file",
        "malformed line",
        "nonexistent input",
    ],
)
def test_bad_input_fails_names_the_problem_and_leaves_nothing(
    generated_runs, bad_score_inputs, case, tmp_path
):
    """A bad header fails before the model loads; bad rows once the one pass has counted them,
    its staged rows dropped."""
    assert generated_runs.trained
    path, message = bad_score_inputs[case]
    dataset = tmp_path / "warehouse"
    args = generated_runs.score_args(dataset, "bad-score")
    args[args.index("--input-uri") + 1] = str(path)
    with pytest.raises(InputError, match=message):
        score.main(args)
    assert paths_naming(dataset, "bad-score") == []
    assert not dataset.exists() or [p for p in dataset.rglob("*") if p.is_file()] == []


def test_a_champion_whose_folder_is_gone_is_named_in_one_sentence(generated_runs, tmp_path):
    assert generated_runs.trained
    args = generated_runs.score_args(tmp_path / "warehouse", "gone")
    gone = str(tmp_path / "models" / "v-gone")
    args[args.index("--model-uri") + 1] = gone
    version = args[args.index("--model-version") + 1]
    with pytest.raises(ChampionUnavailable) as err:
        score.main(args)
    assert str(err.value) == (
        f"the champion {version}'s model {gone} cannot be scored: it is missing; "
        "restore it, or roll the registry back to another version"
    )
    assert not (tmp_path / "warehouse").exists()


def test_reject_fraction_can_be_raised(generated_runs, bad_score_inputs, tmp_path):
    assert generated_runs.trained
    path, _ = bad_score_inputs["too many rejects"]
    dataset = tmp_path / "warehouse"
    args = generated_runs.score_args(dataset, "lenient")
    args[args.index("--input-uri") + 1] = str(path)
    stats = score.main([*args, "--max-reject-fraction", "0.5"])
    assert stats["rows_in"] == 200
    assert 30 < stats["rejected"] < 90
    assert stats["scored"] + stats["rejected"] == 200


# --- A job killed between staging and commit ----------------------------------------------


def _partition_files(dataset: Path, pipeline_id: str) -> dict[str, list[str]]:
    """Every file readers can see of the run's partitions (``_staging`` is never read)."""
    return {
        table: sorted(p.name for p in (dataset / table / f"pipeline_id={pipeline_id}").glob("*"))
        for table in ("batch_predictions", "batch_rejects")
    }


@pytest.mark.slow
def test_a_job_killed_between_staging_and_commit_changes_nothing_readers_see(
    generated_runs, tmp_path
):
    import os
    import signal
    import subprocess
    import sys
    import time

    assert generated_runs.trained
    dataset = tmp_path / "warehouse"
    args = generated_runs.score_args(dataset, "20261129")
    first = score.main(args)
    before = _partition_files(dataset, "20261129")
    stats = tmp_path / "run_stats.json"
    job = subprocess.Popen(
        [sys.executable, str(Path(score.__file__)), *args, "--stats-uri", str(stats)],
        start_new_session=True,  # the job, its JVM and Python workers: one process group
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    staging = dataset / "batch_predictions" / "_staging"
    staged = staging / "pipeline_id=20261129.local-1" / "_SUCCESS"
    try:
        deadline = time.monotonic() + 300
        while not staged.exists() and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert staged.exists(), "the job never staged its one pass"
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    assert staged.parent.exists(), "the job committed before it was killed"
    assert _partition_files(dataset, "20261129") == before
    assert not stats.exists()
    # Another attempt's re-run drops the killed attempt's leftovers.
    assert score.main([*args, "--attempt", "abcde-2"]) == first
    assert not [p for p in dataset.rglob("_staging")]


# --- Attempts: only the one holding the run's commit record commits ------------------------


def test_an_attempt_superseded_while_it_runs_commits_nothing_and_leaves_nothing(
    generated_runs, tmp_path, monkeypatch
):
    """A later attempt takes the record over while this one scores: this one's commit is
    refused in one sentence; the tables, the counts and the drift report stay the later
    attempt's to write."""
    assert generated_runs.trained
    dataset, record = tmp_path / "warehouse", tmp_path / "scoring" / "commit.json"
    stats, drift = tmp_path / "scoring" / "run_stats.json", tmp_path / "scoring" / "drift"
    args = [
        *generated_runs.score_args(dataset, "20261129"), "--commit-record-uri", str(record),
        "--stats-uri", str(stats), "--drift-uri", str(drift),
    ]  # fmt: skip
    take = commit_record.take

    def taken_over_meanwhile(uri, attempt):
        claim = take(uri, attempt)
        take(uri, "later-3")  # another attempt starts while this one runs
        return claim

    monkeypatch.setattr(score.commit_record, "take", taken_over_meanwhile)
    with pytest.raises(commit_record.Superseded) as err:
        score.main([*args, "--attempt", "abcde-1"])
    assert str(err.value).startswith(
        f"attempt abcde-1 no longer holds {record}: attempt later-3 took it over (taken at "
    )
    assert str(err.value).endswith("), so this attempt commits nothing")
    assert not dataset.exists() or not [p for p in dataset.rglob("*") if p.is_file()]
    assert not stats.exists() and not drift.exists()

    monkeypatch.setattr(score.commit_record, "take", take)
    committed = score.main([*args, "--attempt", "later-3"])
    assert json.loads(stats.read_text()) == committed
    assert json.loads(record.read_text())["attempt"] == "later-3"
    assert json.loads(record.read_text())["state"] == "committed"


# --- One row per customer, repeated headers -------------------------------------------------


def test_each_customer_gets_one_prediction_or_one_reject(generated_runs, spark, tmp_path):
    assert generated_runs.trained
    lines = generated_runs.source.score_csv.read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], lines[1:]
    tenure = header.split(",").index("tenure")
    fields = rows[0].split(",")
    fields[tenure] = str(int(fields[tenure]) + 1)  # the same customer, another row
    path = tmp_path / "day.csv"
    body = [rows[0], ",".join(fields), rows[1], rows[1], header, *rows[2:]]
    path.write_text("\n".join([header, *body]) + "\n", encoding="utf-8")
    dataset = tmp_path / "warehouse"
    args = generated_runs.score_args(dataset, "per-customer")
    args[args.index("--input-uri") + 1] = str(path)
    stats = score.main(args)
    customers = len(rows)
    assert stats["rows_in"] == len(rows) + 2  # the other row of rows[0] and the copy of rows[1]
    assert stats["repeated_headers"] == 1
    assert stats["customers_in"] == customers == stats["scored"] + stats["rejected"]
    predictions = storage.read_table(spark, str(dataset / "batch_predictions"))
    rejects = storage.read_table(spark, str(dataset / "batch_rejects"))
    ids = predictions.select("customer_id").union(rejects.select("customer_id"))
    assert ids.count() == ids.distinct().count() == customers
    conflict = rejects.where(f"customer_id = '{fields[0]}'").collect()
    assert [r.reject_reason for r in conflict] == ["conflicting rows for one customer_id"]
    assert rejects.where("customer_id = 'customerID'").count() == 0


# The reference variant trains on the reference data: an end-to-end run, so not in test-fast.
@pytest.mark.parametrize(
    "runs", [pytest.param("reference", marks=pytest.mark.slow), "generated"], indirect=True
)
def test_predictions_are_unchanged_for_every_row_that_passes_the_rules(runs, spark, tmp_path):
    """The new rules only remove rows: the rest score bit for bit as the model scores them."""
    from pyspark.ml import PipelineModel

    from churn_ml import cleaning, raw_csv
    from churn_ml.model import churn_probability

    stats = runs.scored
    predictions = runs.table("batch_predictions", pipeline_id=runs.pipeline_id)
    parsed = cleaning.parse(raw_csv.read(spark, str(runs.source.score_csv), with_label=False))
    expected = churn_probability(
        PipelineModel.load(str(runs.train_model)).transform(cleaning.clean(parsed))
    )
    got = predictions.select("customer_id", "prediction", "churn_probability").collect()
    want = expected.selectExpr("customer_id", "int(prediction)", "churn_probability").collect()
    assert sorted(map(tuple, got)) == sorted(map(tuple, want))  # exact floats, every row
    assert len(got) == stats["scored"]
