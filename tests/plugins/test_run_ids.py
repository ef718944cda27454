"""A DAG run's identity, and a task's attempts: which tries are new work, which are retries."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from churn_airflow.run_ids import (
    RunIdentity,
    attempts,
    first_reusable,
    identify,
    identify_context,
    tries_since_clear,
)

UTC = dt.UTC
MIDNIGHT = dt.datetime(2026, 11, 29, tzinfo=UTC)
AFTERNOON = dt.datetime(2026, 11, 29, 14, 5, 9, tzinfo=UTC)
RUN = "scheduled__2026-11-29T00:00:00+00:00"


@pytest.mark.parametrize("run_type", ["scheduled", "backfill"])
def test_scheduled_and_backfill_runs_use_the_day_of_the_logical_date(run_type):
    run = identify(RUN, run_type, MIDNIGHT, MIDNIGHT)
    assert (run.day, run.pipeline_id) == (dt.date(2026, 11, 29), "20261129")


def test_a_date_keeps_its_leading_zeros():
    day = dt.datetime(2027, 1, 5, tzinfo=UTC)
    assert identify(RUN, "scheduled", day, day).pipeline_id == "20270105"


def test_a_manual_run_with_a_logical_date_adds_its_time():
    run = identify("manual__x", "manual", MIDNIGHT, AFTERNOON)
    assert run.pipeline_id == "20261129-manual-000000"


def test_a_manual_run_without_a_logical_date_uses_its_trigger_time():
    """`airflow dags trigger` without --logical-date: Airflow 3 gives only run_after."""
    run = identify("manual__x", "manual", None, AFTERNOON)
    assert (run.day, run.pipeline_id) == (dt.date(2026, 11, 29), "20261129-manual-140509")


def test_an_asset_triggered_run_takes_the_day_of_its_event():
    """The re-score after a promotion replaces the current day's predictions."""
    run = identify("asset_triggered__x", "asset_triggered", None, AFTERNOON)
    assert (run.day, run.pipeline_id) == (dt.date(2026, 11, 29), "20261129")


def test_a_tagged_asset_triggered_run_adds_its_tag():
    """A drift retrain never takes the day's scheduled training id."""
    run = identify("asset_triggered__x", "asset_triggered", None, AFTERNOON, asset_tag="drift")
    assert (run.day, run.pipeline_id) == (dt.date(2026, 11, 29), "20261129-drift")
    assert identify("m", "manual", None, AFTERNOON, asset_tag="drift").pipeline_id.endswith(
        "-manual-140509"
    )


def test_the_day_param_chooses_the_input_day():
    run = identify("manual__x", "manual", None, AFTERNOON, day="2026-11-03")
    assert (run.day, run.pipeline_id) == (dt.date(2026, 11, 3), "20261103-manual-140509")


@pytest.mark.parametrize("day", ["2026-02-30", "yesterday", "2026/11/03", "20261103"])
def test_a_day_that_is_not_a_date_is_refused_in_one_sentence(day):
    with pytest.raises(ValueError, match=rf"day {day!r} is not a date: use YYYY-MM-DD"):
        identify("manual__x", "manual", None, AFTERNOON, day=day)


@pytest.mark.parametrize("override", ["rerun-1", "0abc", "20261129-fix", "a" * 32, "x"], ids=str)
def test_a_valid_pipeline_id_param_wins(override):
    assert identify("manual__x", "manual", None, AFTERNOON, override).pipeline_id == override
    assert identify(RUN, "scheduled", MIDNIGHT, MIDNIGHT, override).pipeline_id == override


@pytest.mark.parametrize(
    "override",
    ["Rerun", "re_run", "-rerun", "abc-", "re run", "rerun/1", "a" * 33, "rérun"],
    ids=["upper", "underscore", "leading-dash", "trailing-dash", "space", "slash", "long", "é"],
)
def test_an_invalid_pipeline_id_param_is_refused(override):
    with pytest.raises(ValueError, match=r"must be 1-32 characters of \[a-z0-9-\]") as err:
        identify("manual__x", "manual", None, AFTERNOON, override)
    assert repr(override) in str(err.value)


def test_the_run_key_is_deterministic_and_differs_between_runs():
    first = identify("scheduled__2026-11-29", "scheduled", MIDNIGHT, MIDNIGHT)
    again = identify("scheduled__2026-11-29", "scheduled", MIDNIGHT, MIDNIGHT)
    rescore = identify("asset_triggered__2026-11-29T14:05", "asset_triggered", None, AFTERNOON)
    assert first == again
    assert first.pipeline_id == rescore.pipeline_id  # the same partition is replaced ...
    assert first.run_key != rescore.run_key  # ... by new work under new cloud ids
    assert len(first.run_key) == 5 and first.run_key.isalnum()


def test_identify_context_reads_the_dag_run_and_params():
    dag_run = SimpleNamespace(run_id="manual__x", run_type="manual", run_after=AFTERNOON)
    run = identify_context({"dag_run": dag_run}, {"pipeline_id": None, "day": None})
    assert run == identify("manual__x", "manual", None, AFTERNOON)
    assert run.as_dict() == {
        "day": "2026-11-29",
        "pipeline_id": "20261129-manual-140509",
        "run_key": run.run_key,
    }
    assert isinstance(run, RunIdentity)


# --- tries: a retry or a clear ------------------------------------------------------------------


def test_the_first_try_is_new_work():
    """A new task instance: max_tries = retries, try 1."""
    assert list(tries_since_clear(1, 3, 3)) == [1]


def test_automatic_retries_see_the_tries_before_them():
    assert list(tries_since_clear(2, 3, 3)) == [1, 2]
    assert list(tries_since_clear(4, 3, 3)) == [1, 2, 3, 4]


def test_the_first_try_after_a_clear_is_new_work():
    """A clear after try 2 sets max_tries = 2 + retries; try 3 starts afresh."""
    assert list(tries_since_clear(3, 2 + 3, 3)) == [3]
    assert list(tries_since_clear(4, 2 + 3, 3)) == [3, 4]  # a retry of the cleared try


def test_attempts_list_earlier_tries_newest_first():
    ti = SimpleNamespace(try_number=3, max_tries=1)
    assert attempts("k7f2q", ti, retries=1) == (["k7f2q-2", "k7f2q-1"], "k7f2q-3")
    cleared = SimpleNamespace(try_number=3, max_tries=2 + 1)
    assert attempts("k7f2q", cleared, retries=1) == ([], "k7f2q-3")


def test_first_reusable_takes_the_newest_reusable_attempt():
    found = {"k-2": None, "k-1": "SUCCEEDED"}
    looked = []

    def lookup(attempt):
        looked.append(attempt)
        return found[attempt]

    assert first_reusable(["k-2", "k-1"], lookup) == ("k-1", "SUCCEEDED")
    assert looked == ["k-2", "k-1"]
    assert first_reusable([], lookup) is None
    assert first_reusable(["k-2"], lookup) is None
