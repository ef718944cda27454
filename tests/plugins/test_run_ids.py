"""The lineage key of a run and the batch ids derived from it."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from churn_airflow.run_ids import PIPELINE_ID, batch_attempts, pipeline_id, run_date
from pipeline.params import BATCH_ID, JOB_ID, STEPS, job_id

UTC = dt.UTC
NIGHT = dt.datetime(2026, 11, 29, 2, 30, 0, tzinfo=UTC)
AFTERNOON = dt.datetime(2026, 11, 29, 14, 5, 9, tzinfo=UTC)


@pytest.mark.parametrize("run_type", ["scheduled", "backfill"])
def test_scheduled_and_backfill_runs_use_the_day(run_type):
    assert pipeline_id(NIGHT, run_type) == "20261129"
    assert pipeline_id(AFTERNOON, run_type) == "20261129"


def test_a_date_keeps_its_leading_zeros():
    assert pipeline_id(dt.datetime(2027, 1, 5, tzinfo=UTC), "scheduled") == "20270105"


def test_manual_runs_add_the_time_of_day():
    assert pipeline_id(AFTERNOON, "manual") == "20261129-manual-140509"
    assert pipeline_id(NIGHT, "manual") == "20261129-manual-023000"


def test_the_id_depends_only_on_its_inputs():
    assert pipeline_id(AFTERNOON, "manual") == pipeline_id(AFTERNOON, "manual")


@pytest.mark.parametrize("override", ["rerun-1", "0abc", "20261129-fix", "a" * 39, "x"], ids=str)
def test_a_valid_override_wins(override):
    assert pipeline_id(AFTERNOON, "manual", override) == override
    assert pipeline_id(NIGHT, "scheduled", override) == override


def test_an_empty_override_falls_back_to_the_date():
    assert pipeline_id(NIGHT, "scheduled", "") == "20261129"
    assert pipeline_id(NIGHT, "scheduled", None) == "20261129"


@pytest.mark.parametrize(
    "override",
    ["Rerun", "re_run", "-rerun", "re run", "rerun/1", "a" * 40, "rérun"],
    ids=["upper", "underscore", "leading-dash", "space", "slash", "too-long", "accent"],
)
def test_an_invalid_override_is_rejected(override):
    with pytest.raises(ValueError, match=r"must be 1-39 of \[a-z0-9-\]") as err:
        pipeline_id(NIGHT, "manual", override)
    assert repr(override) in str(err.value)


def test_every_accepted_id_makes_valid_batch_and_job_ids():
    """The longest override still fits a Dataproc batch id on a 9th attempt of any step."""
    for pid in ("20261129", "20261129-manual-140509", "0" + "a" * 38, "z"):
        assert PIPELINE_ID.match(pid)
        for step in (*STEPS, "scoring"):
            for attempt in (1, 2, 9):
                earlier, current = batch_attempts(step, pid, attempt)
                assert all(BATCH_ID.match(b) for b in [*earlier, current]), (step, pid, attempt)
        assert JOB_ID.match(job_id(pid, 9))


# --- run_date ------------------------------------------------------------------------------


def test_run_date_is_the_logical_date():
    context = {"logical_date": NIGHT, "dag_run": SimpleNamespace(run_after=AFTERNOON)}
    assert run_date(context) == NIGHT


def test_run_date_falls_back_to_run_after():
    """Airflow 3 manual and asset-triggered runs have no logical date."""
    context = {"logical_date": None, "dag_run": SimpleNamespace(run_after=AFTERNOON)}
    assert run_date(context) == AFTERNOON
    assert run_date({"dag_run": SimpleNamespace(run_after=AFTERNOON)}) == AFTERNOON


def test_manual_run_without_logical_date_gets_a_manual_id():
    context = {"logical_date": None, "dag_run": SimpleNamespace(run_after=AFTERNOON)}
    assert pipeline_id(run_date(context), "manual") == "20261129-manual-140509"


# --- batch_attempts ------------------------------------------------------------------------


def test_first_attempt_has_no_earlier_ids():
    assert batch_attempts("scoring", "20261129", 1) == ([], "churn-scoring-20261129")


def test_second_attempt_lists_the_first():
    assert batch_attempts("scoring", "20261129", 2) == (
        ["churn-scoring-20261129"],
        "churn-scoring-20261129-r2",
    )


def test_third_attempt_lists_both_earlier_ids_in_order():
    earlier, current = batch_attempts("preprocessing", "20261129-manual-140509", 3)
    assert earlier == [
        "churn-preprocessing-20261129-manual-140509",
        "churn-preprocessing-20261129-manual-140509-r2",
    ]
    assert current == "churn-preprocessing-20261129-manual-140509-r3"
    assert all(BATCH_ID.match(b) for b in [*earlier, current])


def test_an_id_too_long_for_dataproc_is_refused():
    _, longest = batch_attempts("preprocessing", "a" * 39, 10)
    assert len(longest) == 63  # the Dataproc maximum
    with pytest.raises(ValueError, match="not a valid Dataproc batch id"):
        batch_attempts("preprocessing", "a" * 39, 100)
