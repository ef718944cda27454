"""Argument types and the fail-loudly runner shared by the job entrypoints (no Spark)."""

from __future__ import annotations

import argparse
import datetime as dt
import logging

import pytest

from churn_ml import cli
from churn_ml.session import JavaMissingError


@pytest.mark.parametrize("value", ["20261129", "20261129-manual-2", "p1", "a" * 32, "0"])
def test_pipeline_id_accepts(value):
    assert cli.pipeline_id(value) == value


@pytest.mark.parametrize(
    "value",
    ["Bad_ID", "", "-20261129", "abc-", "2026 11 29", "a" * 33, "run.1", "Run-1", "p1\n"],
)
def test_pipeline_id_rejects(value):
    with pytest.raises(argparse.ArgumentTypeError, match=r"must be 1-32 characters of \[a-z0-9-\]"):
        cli.pipeline_id(value)


@pytest.mark.parametrize(("value", "expected"), [("0", 0.0), ("1", 1.0), ("0.05", 0.05)])
def test_fraction_accepts(value, expected):
    assert cli.fraction(value) == expected


@pytest.mark.parametrize("value", ["2", "-0.1", "1.0001", "abc", "", "nan", "inf", "5%"])
def test_fraction_rejects(value):
    with pytest.raises(argparse.ArgumentTypeError, match="not a fraction"):
        cli.fraction(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("5", [5]), ("5,10,15", [5, 10, 15]), ("10,5,10", [5, 10]), (" 3, 4", [3, 4])],
)
def test_int_list_accepts(value, expected):
    assert cli.int_list(value) == expected


@pytest.mark.parametrize("value", ["", "0", "5,0", "-5", "a,b", "5,,10", "5;10", "2.5"])
def test_int_list_rejects(value):
    with pytest.raises(argparse.ArgumentTypeError, match="not a list of positive integers"):
        cli.int_list(value)


def test_iso_date_accepts():
    assert cli.iso_date("2026-11-29") == dt.date(2026, 11, 29)
    assert cli.iso_date("2024-02-29") == dt.date(2024, 2, 29)


@pytest.mark.parametrize("value", ["2026-02-30", "2026-13-01", "29/11/2026", "tomorrow", ""])
def test_iso_date_rejects(value):
    with pytest.raises(argparse.ArgumentTypeError, match="not a date"):
        cli.iso_date(value)


@pytest.mark.parametrize(("value", "expected"), [("1", 1), ("30", 30), ("5.0", 5)])
def test_positive_int_accepts(value, expected):
    assert cli.positive_int(value) == expected


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "ten", "", "inf", "nan"])
def test_positive_int_rejects(value):
    with pytest.raises(argparse.ArgumentTypeError):
        cli.positive_int(value)


def test_parser_has_the_lineage_arguments():
    p = cli.parser("test job")
    args = p.parse_args(["--pipeline-id", "20261129", "--day", "2026-11-29"])
    assert (args.pipeline_id, args.day) == ("20261129", dt.date(2026, 11, 29))
    # the flag's older name, which batches submitted before the rename still carry
    older = p.parse_args(["--pipeline-id", "p1", "--pipeline-execution-dt", "2026-11-28"])
    assert older.day == dt.date(2026, 11, 28)
    assert isinstance(p.parse_args(["--pipeline-id", "p1"]).day, dt.date)


@pytest.mark.parametrize(
    "argv",
    [[], ["--pipeline-id", "Bad_ID"], ["--pipeline-id", "p1", "--pipeline-execution-dt", "x"]],
)
def test_parser_exits_2_on_bad_arguments(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.parser("test job").parse_args(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("error", "code", "logged"),
    [
        (cli.InputError("3 rows have a Churn label other than Yes/No"), 3, "bad input: 3 rows"),
        (JavaMissingError("Spark needs Java 17"), 1, "Spark needs Java 17"),
        (RuntimeError("boom"), 1, "job failed"),
        (KeyError("x"), 1, "job failed"),
    ],
)
def test_run_exits_non_zero_on_any_failure(error, code, logged, caplog):
    def main(argv):
        raise error

    with caplog.at_level(logging.INFO, logger="churn_ml"), pytest.raises(SystemExit) as exc:
        cli.run(main, [])
    assert exc.value.code == code
    assert logged in caplog.text


def test_run_passes_argv_and_returns_on_success():
    seen = []
    assert cli.run(seen.append, ["--pipeline-id", "p1"]) is None
    assert seen == [["--pipeline-id", "p1"]]
