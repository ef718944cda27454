"""Preprocessing job: raw CSV -> training_data, end to end, re-runs and bad input."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import preprocess
import pytest

from churn_ml import cleaning, commit_record, sample_data, storage
from churn_ml.cleaning import SOURCE_ROWS
from churn_ml.cli import InputError
from churn_ml.frames import local_frame
from churn_ml.schema import CATEGORICAL_FEATURES, INTERNET_SERVICE_COLUMNS, NUMERIC_FEATURES

REPO = Path(__file__).resolve().parents[2]
JOB = REPO / "spark_jobs" / "preprocess.py"


def run(input_uri, dataset, pipeline_id: str, *extra: str) -> dict:
    return preprocess.main(
        [
            "--pipeline-id",
            pipeline_id,
            "--pipeline-execution-dt",
            "2026-11-29",
            "--input-uri",
            str(input_uri),
            "--dataset-uri",
            str(dataset),
            *extra,
        ]
    )


def paths_naming(root: Path, pipeline_id: str) -> list[Path]:
    """Files and folders under ``root`` that belong to the run, staged or committed."""
    if not root.exists():
        return []
    return [p for p in root.rglob("*") if f"pipeline_id={pipeline_id}" in str(p)]


def write_rows(path: Path, header: list[str], rows) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


# --- End to end ---------------------------------------------------------------------------


@pytest.mark.slow
def test_reference_counts(reference_runs):
    stats = reference_runs.preprocessed
    assert stats == {
        "rows_in": 7043,
        "repeated_headers": 0,
        "duplicates": 0,
        "customers": 7043,
        "dropped": {"missing total_charges": 11},  # no domain rule rejects a reference row
        "invalid_labels": 0,
        "rows_out": 7032,
        "labels": {"no": 5163, "yes": 1869},
    }
    assert reference_runs.table("training_data").count() == 7032


@pytest.mark.slow
def test_training_data_counts(runs):
    stats = runs.preprocessed
    source = runs.source
    assert source.dropped > 0  # both sources have blank TotalCharges to drop
    assert stats["rows_in"] == source.rows_in
    assert stats["dropped"] == {"missing total_charges": source.dropped}
    assert stats["rows_out"] == source.rows_in - source.dropped
    assert sum(stats["labels"].values()) == stats["rows_out"] and min(stats["labels"].values())
    table = runs.table("training_data", pipeline_id=runs.pipeline_id)
    assert table.count() == stats["rows_out"]
    assert table.select("customer_id").distinct().count() == stats["rows_out"]


@pytest.mark.slow
def test_training_data_rows_carry_lineage_and_clean_values(runs):
    table = runs.table("training_data")
    expected_columns = {
        "customer_id",
        "tenure",
        "tenure_group",
        "churn",
        "pipeline_id",
        "pipeline_execution_dt",
        *CATEGORICAL_FEATURES,
        *NUMERIC_FEATURES,
    }
    assert set(table.columns) == expected_columns
    lineage = table.groupBy("pipeline_id", "pipeline_execution_dt").count().collect()
    assert [(r.pipeline_id, r.pipeline_execution_dt) for r in lineage] == [
        (runs.pipeline_id, dt.date(2026, 11, 29))
    ]
    nulls = table.where(" OR ".join(f"`{c}` IS NULL" for c in table.columns)).count()
    assert nulls == 0
    labels = {r.churn for r in table.select("churn").distinct().collect()}
    assert labels == {"yes", "no"}
    recoded = table.where(
        " OR ".join(f"{c} = 'No internet service'" for c in INTERNET_SERVICE_COLUMNS)
    )
    assert recoded.count() == 0
    groups = {r.tenure_group for r in table.select("tenure_group").distinct().collect()}
    assert groups == {"0-12", "12-24", "24-48", "48-60", "60+"}


# --- Re-runs ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("small") / "train.csv"
    sample_data.write_csv(path, 300, seed=3, blank_total_charges_fraction=0.01)
    return path


@pytest.fixture(scope="module")
def small_lines(small_csv) -> list[list[str]]:
    with small_csv.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_rerun_replaces_its_own_rows_and_a_new_id_adds_a_partition(spark, small_csv, tmp_path):
    dataset = tmp_path / "warehouse"
    table = str(dataset / "training_data")
    first = run(small_csv, dataset, "20261129")
    assert first["rows_out"] > 290
    again = run(small_csv, dataset, "20261129")
    assert again == first
    assert (
        storage.read_table(spark, table, {"pipeline_id": "20261129"}).count() == (first["rows_out"])
    )
    assert storage.read_table(spark, table).count() == first["rows_out"]

    run(small_csv, dataset, "20261130")
    counts = storage.read_table(spark, table).groupBy("pipeline_id").count().collect()
    assert {r.pipeline_id: r["count"] for r in counts} == {
        "20261129": first["rows_out"],
        "20261130": first["rows_out"],
    }
    partitions = sorted(p.name for p in (dataset / "training_data").iterdir() if "=" in p.name)
    assert partitions == ["pipeline_id=20261129", "pipeline_id=20261130"]


def test_an_attempt_superseded_while_it_runs_keeps_its_rows_to_itself(
    spark, small_csv, tmp_path, monkeypatch
):
    """The earlier attempt's commit is refused; the run's rows stay those committed before."""
    dataset, record = tmp_path / "warehouse", tmp_path / "commit.json"
    held = ["--commit-record-uri", str(record)]
    first = run(small_csv, dataset, "20261129", *held, "--attempt", "abcde-1")
    take = commit_record.take

    def taken_over_meanwhile(uri, attempt):
        claim = take(uri, attempt)
        take(uri, "abcde-3")
        return claim

    monkeypatch.setattr(preprocess.commit_record, "take", taken_over_meanwhile)
    with pytest.raises(commit_record.Superseded, match="attempt abcde-2 no longer holds"):
        run(small_csv, dataset, "20261130", *held, "--attempt", "abcde-2")
    rows = storage.read_table(spark, str(dataset / "training_data"))
    assert [tuple(r) for r in rows.groupBy("pipeline_id").count().collect()] == [
        ("20261129", first["rows_out"])
    ]
    assert not (dataset / "training_data" / "_staging").exists()


def test_exact_duplicate_rows_are_removed(spark, small_lines, tmp_path):
    header, rows = small_lines[0], small_lines[1:]
    path = write_rows(tmp_path / "dups.csv", header, rows + rows[:5])
    stats = run(path, tmp_path / "warehouse", "dups")
    assert stats["duplicates"] == 5
    assert stats["rows_in"] == len(rows) + 5


# --- Bad input ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad_inputs(spark, small_lines, tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """case -> (input file, regex the error must match); each breaks the contract one way."""
    folder = tmp_path_factory.mktemp("bad_inputs")
    header, rows = small_lines[0], small_lines[1:]
    tenure = header.index("tenure")

    def without_tenure(row):
        return [v for j, v in enumerate(row) if j != tenure]

    (folder / "empty.csv").write_bytes(b"")
    spark.range(3).write.parquet(str(folder / "parquet"))
    parquet = next((folder / "parquet").glob("*.parquet"))
    (folder / "data.csv").write_bytes(parquet.read_bytes())
    records = [dict(zip(header, r, strict=True)) for r in rows[:5]]
    (folder / "records.json").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    maybe = [*rows[:3], [*rows[3][:-1], "Maybe"], *rows[4:]]
    blank = [[*r[:-2], " ", r[-1]] if i % 5 == 0 else r for i, r in enumerate(rows)]
    short = [*rows[:10], rows[10][:5], *rows[11:]]
    all_no = [[*r[:-1], "No"] for r in rows]
    plain = write_rows(folder / "plain.csv", header, rows)
    (folder / "exported.csv").write_bytes(gzip.compress(plain.read_bytes()))
    return {
        "missing column": (
            write_rows(folder / "missing.csv", without_tenure(header), map(without_tenure, rows)),
            r"missing columns \['tenure'\]",
        ),
        "extra column": (
            write_rows(folder / "extra.csv", [*header, "Region"], [[*r, "EU"] for r in rows]),
            r"unexpected columns \['Region'\]",
        ),
        "label outside yes/no": (
            write_rows(folder / "maybe.csv", header, maybe),
            r"1 rows have a Churn label other than Yes/No",
        ),
        "empty file": (folder / "empty.csv", r"the input is empty"),
        "header only": (write_rows(folder / "header.csv", header, []), r"header but no rows"),
        "parquet bytes": (folder / "data.csv", r"not a comma-separated CSV"),
        "json lines": (folder / "records.json", r"not a comma-separated CSV"),
        "malformed line": (write_rows(folder / "short.csv", header, short), r"malformed CSV lines"),
        "too many dropped rows": (
            write_rows(folder / "blank.csv", header, blank),
            r"customers are unusable, more than the allowed fraction 0.05",
        ),
        "nonexistent input": (folder / "nope.csv", r"nope.csv does not exist"),
        "one label class": (
            write_rows(folder / "all_no.csv", header, all_no),
            r"usable customers has Churn=No: a model needs customers of both classes",
        ),
        "gzip named .csv": (
            folder / "exported.csv",
            r"^the input is gzip-compressed but its name does not say so: name it \*\.csv\.gz",
        ),
    }


BAD_INPUTS = [
    "missing column",
    "extra column",
    "label outside yes/no",
    "empty file",
    "header only",
    "parquet bytes",
    "json lines",
    "malformed line",
    "too many dropped rows",
    "nonexistent input",
    "one label class",
    "gzip named .csv",
]


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_fails_fast_names_the_problem_and_writes_nothing(bad_inputs, case, tmp_path):
    path, message = bad_inputs[case]
    dataset = tmp_path / "warehouse"
    with pytest.raises(InputError, match=message):
        run(path, dataset, "bad-input")
    assert paths_naming(dataset, "bad-input") == []
    assert not dataset.exists() or [p for p in dataset.rglob("*") if p.is_file()] == []


def test_malformed_line_is_quoted_in_the_error(bad_inputs, small_lines, tmp_path):
    path, _ = bad_inputs["malformed line"]
    with pytest.raises(InputError) as err:
        run(path, tmp_path / "warehouse", "bad-input")
    assert ",".join(small_lines[11][:5]) in str(err.value)
    assert "at org.apache" not in str(err.value)  # no Java stack in the message


def test_reference_with_no_drop_allowed_fails(reference_train_csv, tmp_path):
    dataset = tmp_path / "warehouse"
    with pytest.raises(InputError, match=r"11 of 7043 customers are unusable.*total_charges"):
        run(reference_train_csv, dataset, "strict", "--max-drop-fraction", "0.0")
    assert paths_naming(dataset, "strict") == []


def test_max_drop_fraction_is_an_inclusive_limit(small_lines, tmp_path):
    header, rows = small_lines[0], small_lines[1:101]
    rows = [[*r[:-2], " ", r[-1]] if i < 4 else r for i, r in enumerate(rows)]
    blanks = sum(1 for r in rows if not r[-2].strip())
    path = write_rows(tmp_path / "blanks.csv", header, rows)
    dataset = tmp_path / "warehouse"
    stats = run(path, dataset, "limit", "--max-drop-fraction", str(blanks / 100))
    assert stats["dropped"] == {"missing total_charges": blanks}
    assert stats["rows_out"] == 100 - blanks
    with pytest.raises(InputError, match=f"{blanks} of 100 customers are unusable"):
        run(path, dataset, "over-limit", "--max-drop-fraction", str((blanks - 1) / 100))
    assert paths_naming(dataset, "over-limit") == []


# --- Command line -------------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_GATEWAY")}
    env.update(CHURN_SPARK_MASTER="local[1]", CHURN_SPARK_DRIVER_MEMORY="1g")
    return env


@pytest.mark.slow
def test_command_line_exits_3_and_names_the_missing_column(bad_inputs, tmp_path):
    path, _ = bad_inputs["missing column"]
    args = ["--pipeline-id", "cli-bad", "--input-uri", str(path)]
    args += ["--dataset-uri", str(tmp_path / "warehouse")]
    result = subprocess.run(
        [sys.executable, str(JOB), *args],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 3, result.stderr[-3000:]
    assert "missing columns ['tenure']" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "warehouse").exists()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--pipeline-id", "Bad_ID"], "--pipeline-id"),
        (["--pipeline-id", "p1", "--max-drop-fraction", "2"], "--max-drop-fraction"),
    ],
)
def test_command_line_exits_2_on_bad_arguments(args, named, tmp_path):
    args = [*args, "--input-uri", "x.csv", "--dataset-uri", str(tmp_path / "warehouse")]
    result = subprocess.run(
        [sys.executable, str(JOB), *args],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert named in result.stderr and "error:" in result.stderr
    assert not (tmp_path / "warehouse").exists()


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--pipeline-id", "p1", "--dataset-uri", "w"],  # no --input-uri
        [
            "--pipeline-id",
            "p1",
            "--input-uri",
            "x",
            "--dataset-uri",
            "w",
            "--max-drop-fraction",
            "x",
        ],
        [
            "--pipeline-id",
            "p1",
            "--input-uri",
            "x",
            "--dataset-uri",
            "w",
            "--pipeline-execution-dt",
            "2026-02-30",
        ],
    ],
)
def test_parse_args_rejects(args):
    with pytest.raises(SystemExit) as exc:
        preprocess.parse_args(args)
    assert exc.value.code == 2


def test_drop_stats_count_reasons_customers_and_bad_labels(spark):
    records = local_frame(
        spark,
        [
            ("a", "yes", None, 1),
            ("b", "no", "missing total_charges", 1),
            ("c", "maybe", None, 2),
            ("d", None, "out-of-range tenure", 1),
            ("e", "no", cleaning.CONFLICTING_ROWS, 3),
            ("customerID", "churn", cleaning.REPEATED_HEADER, 2),
        ],
        f"customer_id string, churn string, reject_reason string, {SOURCE_ROWS} long",
    )
    counts = records.agg(*preprocess.input_counts(records)).first().asDict()
    assert preprocess.drop_stats(counts) == {
        "rows_in": 8,
        "repeated_headers": 2,
        "duplicates": 3,
        "customers": 5,
        "dropped": {
            cleaning.CONFLICTING_ROWS: 1,
            "missing total_charges": 1,
            "out-of-range tenure": 1,
        },
        "invalid_labels": 2,
        "rows_out": 2,
        "labels": {"no": 0, "yes": 1},
    }


@pytest.mark.parametrize(
    ("stats", "message"),
    [
        ({"invalid_labels": 1}, r"1 rows have a Churn label other than Yes/No"),
        ({"customers": 0, "rows_out": 0}, r"header but no rows"),
        ({"rows_out": 94}, r"6 of 100 customers are unusable, more than the allowed fraction 0.05"),
        (
            {"labels": {"no": 95, "yes": 0}},
            r"^every one of the 95 usable customers has Churn=No: a model needs customers of both",
        ),
    ],
)
def test_check_names_what_breaks_the_contract(stats, message):
    labels = {"no": 80, "yes": 15}
    good = {"invalid_labels": 0, "customers": 100, "rows_out": 95, "dropped": {}, "labels": labels}
    preprocess.check(good, 0.05)  # 5 of 100 is within the limit
    with pytest.raises(InputError, match=message):
        preprocess.check({**good, **stats}, 0.05)


# --- The data contract: domain rules, one row per customer, repeated headers ---------------


def test_domain_rejects_count_toward_the_drop_limit(small_lines, tmp_path):
    header, rows = small_lines[0], small_lines[1:21]
    col = {name: i for i, name in enumerate(header)}

    def broken(row, name, value):
        return [value if i == col[name] else v for i, v in enumerate(row)]

    rows = [
        broken(rows[0], "tenure", "-5"),
        broken(rows[1], "Contract", "Weekly"),
        broken(rows[2], "TotalCharges", " "),
        *rows[3:],
    ]
    path = write_rows(tmp_path / "domain.csv", header, rows)
    stats = run(path, tmp_path / "warehouse", "domain", "--max-drop-fraction", "0.15")
    assert stats["dropped"] == {
        "missing total_charges": 1,
        "out-of-range tenure": 1,
        "unknown contract": 1,
    }
    assert stats["rows_out"] == 17
    with pytest.raises(InputError, match=r"3 of 20 customers are unusable.*'unknown contract': 1"):
        run(path, tmp_path / "warehouse", "domain-strict", "--max-drop-fraction", "0.1")


def test_two_rows_of_one_customer_are_one_reject(spark, small_lines, tmp_path):
    header, rows = small_lines[0], small_lines[1:11]
    tenure = header.index("tenure")
    other = [*rows[0][:tenure], str(int(rows[0][tenure]) + 1), *rows[0][tenure + 1 :]]
    path = write_rows(tmp_path / "conflict.csv", header, [*rows, other])
    dataset = tmp_path / "warehouse"
    stats = run(path, dataset, "conflict", "--max-drop-fraction", "0.2")
    assert stats["rows_in"] == 11
    assert stats["customers"] == 10
    assert stats["duplicates"] == 1
    assert stats["dropped"] == {"conflicting rows for one customer_id": 1}
    table = storage.read_table(spark, str(dataset / "training_data"), {"pipeline_id": "conflict"})
    ids = [r.customer_id for r in table.select("customer_id").collect()]
    assert sorted(ids) == sorted(r[0] for r in rows[1:])  # the conflicting customer is out


def test_a_repeated_header_line_is_dropped_and_counted(spark, small_lines, tmp_path):
    header, rows = small_lines[0], small_lines[1:]
    path = write_rows(tmp_path / "concat.csv", header, [*rows[:100], header, *rows[100:]])
    stats = run(path, tmp_path / "warehouse", "concat")
    clean = run(write_rows(tmp_path / "one.csv", header, rows), tmp_path / "warehouse", "one")
    assert stats["repeated_headers"] == 1
    assert {**stats, "repeated_headers": 0} == clean


def test_a_header_line_in_another_order_fails_naming_file_and_line(small_lines, tmp_path):
    header, rows = small_lines[0], small_lines[1:]
    path = write_rows(tmp_path / "mixed.csv", header, [*rows[:5], header[::-1], *rows[5:]])
    dataset = tmp_path / "warehouse"
    message = rf"columns in another order: file file://{path}, line '{','.join(header[::-1])}'"
    with pytest.raises(InputError, match=message):
        run(path, dataset, "mixed")
    assert paths_naming(dataset, "mixed") == []
