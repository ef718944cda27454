"""The champion scored beside a run's model: loading, comparability, and the jobs' records."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import train
import tune
from pyspark.sql import functions as F

from churn_ml import champion, cli, storage
from churn_ml.champion import Champion, ChampionRef, ChampionUnavailable
from churn_ml.model import split, with_label
from churn_ml.schema import CATEGORICAL_FEATURES, NUMERIC_FEATURES

pytestmark = pytest.mark.slow

VERSION = "gen-20261129-training-abcde-1"


@pytest.fixture(scope="module")
def trained(generated_runs):
    """The session's trained model on generated data: the champion of these tests."""
    assert generated_runs.trained
    return generated_runs


@pytest.fixture(scope="module")
def ref(trained) -> ChampionRef:
    return ChampionRef(VERSION, str(trained.train_model), 42)


@pytest.fixture(scope="module")
def test_rows(trained):
    rows = trained.table("training_data", pipeline_id=trained.pipeline_id)
    return split(with_label(rows), 42)[1]


def copy_rows(trained, folder):
    """A copy of the run's training_data, so these jobs never replace the session's tables."""
    shutil.copytree(trained.dataset / "training_data", folder / "warehouse" / "training_data")
    return folder / "warehouse"


@pytest.fixture(scope="module")
def warehouse(trained, tmp_path_factory):
    return copy_rows(trained, tmp_path_factory.mktemp("champion"))


def job_args(trained, warehouse, out, *extra: str) -> list[str]:
    args = trained.train_args(out / "model", out / "metrics")
    args[args.index("--dataset-uri") + 1] = str(warehouse)
    return [*args, *extra]


def champion_args(ref: ChampionRef, seed: str = "42") -> list[str]:
    return ["--champion-version", ref.version, "--champion-model-uri", ref.model_uri,
            "--champion-seed", seed, "--bootstrap-replicates", "200"]  # fmt: skip


def test_the_model_reads_the_cleaned_feature_columns(spark, ref):
    model = champion.load(spark, ref)
    assert sorted(champion.required_columns(model)) == sorted(
        [*CATEGORICAL_FEATURES, *NUMERIC_FEATURES]
    )


def test_no_champion_no_comparison(spark, test_rows):
    assert champion.prepare(spark, None, 42, test_rows) is None


def test_a_comparable_champion(spark, ref, test_rows):
    prepared = champion.prepare(spark, ref, 42, test_rows)
    assert isinstance(prepared, Champion)
    assert prepared.incomparable is None


def test_a_missing_model_fails_with_one_sentence_naming_the_uri(spark, tmp_path, test_rows):
    gone = ChampionRef(VERSION, str(tmp_path / "gone"), 42)
    with pytest.raises(ChampionUnavailable) as err:
        champion.prepare(spark, gone, 42, test_rows)
    assert str(err.value) == (
        f"the champion {VERSION}'s model {tmp_path / 'gone'} cannot be scored: it is missing; "
        "restore it, or roll the registry back to another version"
    )


def test_an_unreadable_model_fails_with_one_sentence_naming_the_uri(spark, tmp_path, test_rows):
    broken = tmp_path / "broken"
    (broken / "metadata").mkdir(parents=True)
    (broken / "metadata" / "part-00000").write_text("not json\n")
    with pytest.raises(ChampionUnavailable) as err:
        champion.prepare(spark, ChampionRef(VERSION, str(broken), 42), 42, test_rows)
    message = str(err.value)
    assert message.startswith(f"the champion {VERSION}'s model {broken} cannot be scored: ")
    assert "it is unreadable (" in message and "\n" not in message


@pytest.mark.parametrize(
    ("seed", "reason"),
    [
        (7, "it was trained with split seed 7 and this run splits with 42"),
        (None, "it was trained with an unknown split seed and this run splits with 42"),
    ],
)
def test_another_split_seed_is_incomparable(spark, ref, test_rows, seed, reason):
    other = ChampionRef(ref.version, ref.model_uri, seed)
    assert champion.prepare(spark, other, 42, test_rows).incomparable == reason


def test_features_that_no_longer_match_the_rows_are_incomparable(spark, ref, test_rows):
    lacking = test_rows.drop("contract")
    assert champion.prepare(spark, ref, 42, lacking).incomparable == (
        "its features need columns the run's rows lack: ['contract']"
    )
    retyped = test_rows.withColumn("monthly_charges", F.col("monthly_charges").cast("string"))
    reason = champion.prepare(spark, ref, 42, retyped).incomparable
    assert reason.startswith("its features do not fit the run's rows: ")
    assert "monthly_charges" in reason


def test_paired_scores_the_champion_on_the_same_rows(spark, ref, trained, test_rows):
    model = champion.load(spark, ref)
    from churn_ml.model import churn_probability

    predictions = churn_probability(model.transform(test_rows))
    both = champion.paired(predictions, model)
    assert both.columns == ["customer_id", "label", "prediction", "churn_probability",
                            "champion_prediction", "champion_probability"]  # fmt: skip
    rows = both.collect()
    assert len(rows) == test_rows.count()
    assert all(r.churn_probability == r.champion_probability for r in rows)


@pytest.fixture(scope="module")
def retrained(trained, warehouse, ref, tmp_path_factory) -> tuple[dict, object]:
    """The same data and seed again, with the first model as champion: the same model."""
    out = tmp_path_factory.mktemp("retrained")
    return train.main(job_args(trained, warehouse, out, *champion_args(ref))), out


def test_the_job_scores_the_champion_on_its_test_rows(retrained, trained, ref):
    doc, out = retrained
    assert json.loads((out / "metrics" / "metrics.json").read_text()) == doc
    theirs = doc["champion"]
    assert {k: theirs[k] for k in ("version", "model_uri", "seed")} == {
        "version": VERSION,
        "model_uri": ref.model_uri,
        "seed": 42,
    }
    # Identical models: identical metrics, curves and matrices on the same rows ...
    for key in ("metrics", "rows", "confusion_matrix", "roc_curve", "pr_curve"):
        assert theirs[key] == doc[key] == trained.trained[key], key
    summary = doc["comparison"]
    assert summary["champion"] == VERSION and summary["comparable"] is True
    assert (summary["rows"], summary["replicates"], summary["confidence"]) == (doc["rows"], 200,
                                                                              0.95)  # fmt: skip
    # ... and a difference of exactly nothing, in every replicate.
    for metric in ("au_pr", "au_roc"):
        numbers = summary[metric]
        assert numbers["challenger"] == numbers["champion"] == doc["metrics"][metric]
        assert (numbers["delta"], numbers["lower"], numbers["upper"]) == (0.0, 0.0, 0.0)


def test_model_metrics_hold_both_models_and_the_intervals(retrained, warehouse, spark):
    doc, _ = retrained
    table = storage.read_table(spark, str(warehouse / "model_metrics"))
    got = {r.metric_name: r.metric_value for r in table.collect()}
    assert got == {
        **doc["metrics"],
        **{f"champion_{k}": v for k, v in doc["champion"]["metrics"].items()},
        **{f"{m}_delta{part}": 0.0 for m in ("au_pr", "au_roc")
           for part in ("", "_lower", "_upper")},
    }  # fmt: skip


def test_an_incomparable_champion_is_recorded_with_its_reason(trained, ref, tmp_path, spark):
    warehouse = copy_rows(trained, tmp_path)
    doc = train.main(job_args(trained, warehouse, tmp_path, *champion_args(ref, seed="7")))
    assert doc["champion"] == {"version": VERSION, "model_uri": ref.model_uri, "seed": 7}
    assert doc["comparison"] == {
        "champion": VERSION,
        "comparable": False,
        "reason": f"champion {VERSION}: it was trained with split seed 7 and this run splits "
        "with 42",
    }
    assert (tmp_path / "model" / "metadata").is_dir()  # the run itself is complete
    table = storage.read_table(spark, str(warehouse / "model_metrics"))
    assert {r.metric_name: r.metric_value for r in table.collect()} == doc["metrics"]


def test_a_missing_champion_fails_the_job_before_it_fits(trained, tmp_path, caplog):
    warehouse = copy_rows(trained, tmp_path)
    gone = ChampionRef(VERSION, str(tmp_path / "gone"), 42)
    argv = job_args(trained, warehouse, tmp_path, *champion_args(gone))
    with caplog.at_level(logging.INFO, logger="churn_ml"), pytest.raises(SystemExit) as exit_:
        cli.run(train.main, argv)
    assert exit_.value.code == 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        f"the champion {VERSION}'s model {tmp_path / 'gone'} cannot be scored: it is missing; "
        "restore it, or roll the registry back to another version"
    ]
    assert errors[0].exc_info is None  # one sentence, no traceback
    assert "fitting" not in caplog.text
    assert not (tmp_path / "model").exists() and not (tmp_path / "metrics").exists()
    assert not (warehouse / "model_metrics").exists()


def test_an_unreadable_champion_fails_the_job_before_it_writes(trained, tmp_path):
    """It loads while the run fits; the job waits for it before writing anything."""
    warehouse = copy_rows(trained, tmp_path)
    broken = tmp_path / "broken"
    (broken / "metadata").mkdir(parents=True)
    (broken / "metadata" / "part-00000").write_text("not json\n")
    argv = job_args(
        trained, warehouse, tmp_path, *champion_args(ChampionRef(VERSION, str(broken), 42))
    )
    with pytest.raises(ChampionUnavailable, match="it is unreadable"):
        train.main(argv)
    assert not (tmp_path / "model").exists() and not (tmp_path / "metrics").exists()
    assert sorted(p.name for p in warehouse.iterdir()) == ["training_data"]


def test_a_version_without_a_model_uri_is_a_bad_argument(capsys):
    with pytest.raises(SystemExit) as exit_:
        train.parse_args(["--pipeline-id", "p", "--dataset-uri", "/w", "--model-uri", "/m",
                          "--metrics-uri", "/x", "--champion-version", VERSION])  # fmt: skip
    assert exit_.value.code == 2
    assert "--champion-version needs --champion-model-uri" in capsys.readouterr().err


def test_tuning_scores_the_champion_too(trained, warehouse, ref, tmp_path):
    args = [*job_args(trained, warehouse, tmp_path, *champion_args(ref)),
            "--folds", str(trained.tune_folds), "--parallelism", "2"]  # fmt: skip
    for train_only in ("--num-trees", "--max-depth"):
        at = args.index(train_only)
        del args[at : at + 2]
    for name, values in trained.tune_grid.items():
        args += [f"--{name.replace('_', '-')}-grid", ",".join(map(str, values))]
    doc = tune.main(args)
    summary = doc["comparison"]
    assert summary["champion"] == VERSION and summary["comparable"] is True
    assert summary["rows"] == doc["rows"] == trained.trained["rows"]
    assert summary["au_pr"]["champion"] == trained.trained["metrics"]["au_pr"]
    assert summary["au_pr"]["challenger"] == doc["metrics"]["au_pr"]
    assert summary["au_pr"]["lower"] <= summary["au_pr"]["delta"] <= summary["au_pr"]["upper"]
