"""The synthetic churn data generator: schema, domains, consistency, determinism, CLI."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from churn_ml.sample_data import (
    SCORE_COLUMNS,
    TRAIN_COLUMNS,
    generate_rows,
    write_csv,
    write_daily_partitions,
)

REPO = Path(__file__).resolve().parents[2]
REFERENCE_DIR = REPO / ".." / "shared" / "data"
REFERENCE_TRAIN = REFERENCE_DIR / "customer_churn_train_data.csv"
REFERENCE_SCORE = REFERENCE_DIR / "customer_churn_score_data.csv"
CLI = REPO / "spark_jobs" / "generate_data.py"

COL = {name: i for i, name in enumerate(TRAIN_COLUMNS)}
SERVICES = (
    "OnlineSecurity",
    "OnlineBackup",
    "DeviceProtection",
    "TechSupport",
    "StreamingTV",
    "StreamingMovies",
)
NUMBER = re.compile(r"\d+(\.\d?[1-9])?")  # 29.85, 1889.5, 84: no trailing zeros


def _read(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


@pytest.fixture(scope="module")
def reference() -> list[list[str]]:
    if not REFERENCE_TRAIN.is_file():
        pytest.skip(f"reference data not found at {REFERENCE_TRAIN}")
    return _read(REFERENCE_TRAIN)


@pytest.fixture(scope="module")
def rows() -> list[tuple[str, ...]]:
    return list(generate_rows(20_000, seed=7))


def _column(rows, name: str) -> list[str]:
    return [r[COL[name]] for r in rows]


def test_columns_match_the_reference_headers(reference):
    assert tuple(reference[0]) == TRAIN_COLUMNS
    if REFERENCE_SCORE.is_file():
        assert tuple(_read(REFERENCE_SCORE)[0]) == SCORE_COLUMNS
    assert (*SCORE_COLUMNS, "Churn") == TRAIN_COLUMNS


def test_written_header_is_the_reference_header(reference, tmp_path):
    path = tmp_path / "train.csv"
    assert write_csv(path, 10, seed=1) == 10
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[0] == ",".join(reference[0])
    assert len(lines) == 12 and lines[-1] == ""  # header + 10 rows, "\n" line ends
    score = tmp_path / "score.csv"
    write_csv(score, 10, seed=1, with_label=False)
    assert _read(score)[0] == list(SCORE_COLUMNS)


def test_categorical_domains_equal_the_reference(reference, rows):
    for name in TRAIN_COLUMNS:
        if name in ("customerID", "tenure", "MonthlyCharges", "TotalCharges"):
            continue
        expected = {r[COL[name]] for r in reference[1:]}
        assert set(_column(rows, name)) == expected, name


def test_numeric_columns_match_the_reference_format_and_range(reference, rows):
    ref_mc = [float(v) for v in _column(reference[1:], "MonthlyCharges")]
    low, high = min(ref_mc), max(ref_mc)
    for r in rows:
        assert re.fullmatch(r"\d{4}-[A-Z]{5}", r[COL["customerID"]])
        assert 0 <= int(r[COL["tenure"]]) <= 72
        monthly = r[COL["MonthlyCharges"]]
        assert NUMBER.fullmatch(monthly)
        assert low <= float(monthly) <= high
        total = r[COL["TotalCharges"]]
        assert total == " " or NUMBER.fullmatch(total)
    assert {int(v) for v in _column(rows, "tenure")} >= {1, 36, 72}


def test_rows_are_internally_consistent(rows):
    for r in rows:
        if r[COL["PhoneService"]] == "No":
            assert r[COL["MultipleLines"]] == "No phone service"
            assert r[COL["InternetService"]] != "No"  # everyone has some service
        else:
            assert r[COL["MultipleLines"]] in ("Yes", "No")
        no_internet = r[COL["InternetService"]] == "No"
        for name in SERVICES:
            assert (r[COL[name]] == "No internet service") == no_internet, name
        tenure, monthly = int(r[COL["tenure"]]), float(r[COL["MonthlyCharges"]])
        total = r[COL["TotalCharges"]]
        if tenure == 0:
            assert total == " " and r[COL["Churn"]] == "No"
        elif tenure == 1:
            assert total == r[COL["MonthlyCharges"]]
        else:
            assert 0.5 < float(total) / (tenure * monthly) < 1.5


def test_monthly_charges_grow_with_services(rows):
    def mean_charge(internet: str) -> float:
        charges = [
            float(r[COL["MonthlyCharges"]]) for r in rows if r[COL["InternetService"]] == internet
        ]
        return sum(charges) / len(charges)

    assert mean_charge("No") < mean_charge("DSL") < mean_charge("Fiber optic")


def test_marginals_are_close_to_the_reference(reference, rows):
    for name in ("Contract", "InternetService", "PaymentMethod", "SeniorCitizen", "Churn"):
        ref = Counter(_column(reference[1:], name))
        got = Counter(_column(rows, name))
        for value, count in ref.items():
            assert abs(got[value] / len(rows) - count / (len(reference) - 1)) < 0.03, (name, value)


def test_same_seed_gives_identical_bytes_and_other_seeds_differ(tmp_path):
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    write_csv(a, 2_000, seed=42)
    write_csv(b, 2_000, seed=42)
    write_csv(c, 2_000, seed=43)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    assert not list(tmp_path.glob(".*.tmp"))  # temp files were renamed away


def test_score_rows_are_the_train_rows_without_the_label():
    train = list(generate_rows(500, seed=3))
    score = list(generate_rows(500, seed=3, with_label=False))
    assert score == [r[:-1] for r in train]


def test_customer_ids_are_unique(rows):
    assert len(set(_column(rows, "customerID"))) == len(rows)


def test_blank_total_charges_follow_the_configured_fraction(rows):
    assert " " in _column(rows, "TotalCharges")  # default ~11/7043 of rows
    none = list(generate_rows(5_000, seed=1, blank_total_charges_fraction=0.0))
    assert " " not in _column(none, "TotalCharges")
    many = _column(generate_rows(5_000, seed=1, blank_total_charges_fraction=0.1), "TotalCharges")
    assert 0.07 < many.count(" ") / len(many) < 0.13


def test_churn_rate_is_like_the_reference(rows):
    rate = _column(rows, "Churn").count("Yes") / len(rows)
    assert 0.2 <= rate <= 0.33


def test_churn_shift_moves_the_base_rate_of_the_same_customers():
    def rate(rows) -> float:
        return _column(rows, "Churn").count("Yes") / len(rows)

    usual = list(generate_rows(5_000, seed=3))
    fewer = list(generate_rows(5_000, seed=3, churn_shift=-1.0))
    more = list(generate_rows(5_000, seed=3, churn_shift=1.0))
    assert rate(fewer) < 0.18 < 0.22 < rate(usual) < 0.31 < 0.36 < rate(more)
    assert [r[:-1] for r in fewer] == [r[:-1] for r in usual] == [r[:-1] for r in more]


def test_churn_depends_on_the_features(rows):
    def rate(name: str, value: str) -> float:
        labels = [r[COL["Churn"]] for r in rows if r[COL[name]] == value]
        return labels.count("Yes") / len(labels)

    assert rate("Contract", "Month-to-month") > 0.35 > 0.1 > rate("Contract", "Two year")
    assert rate("InternetService", "Fiber optic") > rate("InternetService", "DSL") + 0.1
    assert rate("PaymentMethod", "Electronic check") > rate("PaymentMethod", "Mailed check") + 0.1


def test_generate_rows_streams():
    rows = generate_rows(10**10, seed=1)  # far too many to hold: must be lazy
    assert isinstance(rows, Iterator) and not isinstance(rows, list)
    assert len(next(rows)) == len(TRAIN_COLUMNS)


@pytest.mark.parametrize("kwargs", [{"n": -1}, {"n": 10, "blank_total_charges_fraction": 1.0}])
def test_generate_rows_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        generate_rows(seed=1, **kwargs)


def test_daily_partitions_layout_and_seeds(tmp_path):
    dates = ["2026-11-27", "2026-11-28"]
    paths = write_daily_partitions(tmp_path / "out", dates, 50, seed=42, with_label=False)
    assert paths == [tmp_path / "out" / f"dt={d}" / "part-00000.csv" for d in dates]
    for path in paths:  # each day is marked complete after its file
        marker = path.parent / "_SUCCESS"
        assert marker.read_bytes() == b"" and marker.stat().st_mtime_ns >= path.stat().st_mtime_ns
    first, second = (_read(p) for p in paths)
    assert first[0] == second[0] == list(SCORE_COLUMNS)
    assert len(first) == len(second) == 51
    assert first[1:] != second[1:]  # each date has its own seed ...
    again = write_daily_partitions(tmp_path / "again", dates[:1], 50, seed=42, with_label=False)
    assert again[0].read_bytes() == paths[0].read_bytes()  # ... which is reproducible
    with pytest.raises(ValueError):
        write_daily_partitions(tmp_path / "dup", dates + dates[:1], 5)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(CLI), *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_cli_writes_a_file_and_partitions(tmp_path):
    result = _cli("--rows", "30", "--output", "train.csv", "--seed", "5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    write_csv(tmp_path / "expected.csv", 30, seed=5)
    assert (tmp_path / "train.csv").read_bytes() == (tmp_path / "expected.csv").read_bytes()

    args = ("--rows", "5", "--output", "out", "--kind", "score", "--date", "2026-11-29")
    result = _cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = _read(tmp_path / "out" / "dt=2026-11-29" / "part-00000.csv")
    assert written[0] == list(SCORE_COLUMNS) and len(written) == 6


@pytest.mark.parametrize(
    "args",
    [
        ["--rows", "0", "--output", "x.csv"],
        ["--rows", "-3", "--output", "x.csv"],
        ["--rows", "ten", "--output", "x.csv"],
        ["--rows", "5", "--output", "x", "--date", "2026-02-30"],
        ["--rows", "5", "--output", "x", "--dates", "2026-11-27,nope"],
        ["--rows", "5", "--output", "x"],  # no dates: must name a .csv file
        ["--rows", "5"],
        ["--rows", "5", "--output", "x.csv", "--shift", "Tenure=+3"],
        ["--rows", "5", "--output", "x.csv", "--shift", "Contract=+0.9"],
        ["--rows", "5", "--output", "x.csv", "--shift", "MonthlyCharges"],
    ],
)
def test_cli_rejects_bad_arguments(args, tmp_path):
    result = _cli(*args, cwd=tmp_path)
    assert result.returncode != 0
    assert "error:" in result.stderr
    assert not list(tmp_path.iterdir())


# --- Shifted days -------------------------------------------------------------------------


SHIFT = {"Contract": 0.3, "MonthlyCharges": 30.0}


def _shifted_pairs(n: int, shift: dict) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    plain = generate_rows(n, seed=11, with_label=False)
    moved = generate_rows(n, seed=11, with_label=False, shift=shift)
    return list(zip(plain, moved, strict=True))


def test_a_shift_moves_the_shifted_columns_only():
    pairs = _shifted_pairs(5000, SHIFT)
    moved = {"Contract", "MonthlyCharges", "TotalCharges"}
    for plain, shifted in pairs:
        for name in SCORE_COLUMNS:
            if name not in moved:
                assert plain[COL[name]] == shifted[COL[name]], name
    plain, shifted = (
        sum(r[COL["Contract"]] == "Month-to-month" for r in side) / 5000
        for side in zip(*pairs, strict=True)
    )
    assert shifted - plain == pytest.approx(0.3, abs=0.03)
    assert list(generate_rows(50, seed=11, with_label=False, shift=SHIFT)) == [
        s for _, s in pairs[:50]
    ]  # deterministic


def test_a_monthly_charges_shift_adds_dollars_and_keeps_the_total_ratio():
    for plain, shifted in _shifted_pairs(2000, {"MonthlyCharges": 30.0}):
        before, after = float(plain[COL["MonthlyCharges"]]), float(shifted[COL["MonthlyCharges"]])
        assert after == pytest.approx(before + 30.0)
        if plain[COL["TotalCharges"]].strip():
            ratio = float(shifted[COL["TotalCharges"]]) / float(plain[COL["TotalCharges"]])
            assert ratio == pytest.approx(after / before, abs=0.01 / before + 1e-3)
        else:
            assert shifted[COL["TotalCharges"]] == plain[COL["TotalCharges"]]  # still blank
        assert plain[COL["Contract"]] == shifted[COL["Contract"]]


def test_a_negative_contract_shift_moves_customers_to_longer_contracts():
    pairs = _shifted_pairs(5000, {"Contract": -0.3})
    moved = [(p[COL["Contract"]], s[COL["Contract"]]) for p, s in pairs if p != s]
    assert moved and all(a == "Month-to-month" != b for a, b in moved)
    assert len(moved) / 5000 == pytest.approx(0.3, abs=0.03)


@pytest.mark.parametrize(
    ("shift", "message"),
    [
        ({"Tenure": 3}, "cannot shift"),
        ({"Contract": 0.5}, "between -0.55 and 0.45"),
        ({"MonthlyCharges": float("nan")}, "finite"),
    ],
)
def test_bad_shifts_are_refused(shift, message):
    with pytest.raises(ValueError, match=message):
        generate_rows(5, shift=shift)


def test_cli_shift_flag(tmp_path):
    args = ("--rows", "20", "--kind", "score", "--seed", "4", "--output", "day.csv")
    result = _cli(*args, "--shift", "MonthlyCharges=+30", "--shift", "Contract=+0.3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    write_csv(tmp_path / "expected.csv", 20, seed=4, with_label=False, shift=SHIFT)
    assert (tmp_path / "day.csv").read_bytes() == (tmp_path / "expected.csv").read_bytes()
