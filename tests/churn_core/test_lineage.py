"""The pipeline_id rule and the cloud ids built from it (pure Python)."""

from __future__ import annotations

import re

import pytest

from churn_core import lineage, stages


@pytest.mark.parametrize("value", ["20261129", "20261129-manual-140509", "p1", "a" * 32, "0"])
def test_pipeline_ids_accepted(value):
    assert lineage.check_pipeline_id(value) == value
    assert re.search(lineage.PIPELINE_ID_PATTERN, value)  # the DAG Params' JSON-schema form


@pytest.mark.parametrize("value", ["", "a" * 33, "-a", "a-", "A1", "a_b", "a\n", None])
def test_pipeline_ids_refused(value):
    with pytest.raises(ValueError, match="must be 1-32 characters"):
        lineage.check_pipeline_id(value)
    if isinstance(value, str) and not value.endswith("\n"):  # Python's $ lets "a\n" through
        assert not re.search(lineage.PIPELINE_ID_PATTERN, value)


def test_attempt():
    assert lineage.attempt("k7f2q", 1) == "k7f2q-1"
    assert lineage.attempt("k7f2q", 999) == "k7f2q-999"
    for bad in (("k7f2q", 0), ("k7f2q", 1000), ("k7f2", 1), ("K7F2Q", 1)):
        with pytest.raises(ValueError, match="must be a 5-character run key and a try"):
            lineage.attempt(*bad)


def test_ids():
    assert (
        lineage.batch_id(stages.SCORING, "20261129", "k7f2q-2") == "churn-scoring-20261129-k7f2q-2"
    )
    assert lineage.job_id("20261129", "k7f2q-1") == "churn-training-20261129-k7f2q-1"


def test_the_longest_ids_still_fit_dataproc_and_vertex():
    """A 32-character pipeline_id on the 999th try of the longest step is a valid batch id."""
    longest = lineage.batch_id(stages.PREPROCESSING, "a" * 32, lineage.attempt("zzzzz", 999))
    assert len(longest) == 62
    for stage in stages.ALL:
        assert lineage.BATCH_ID.fullmatch(lineage.batch_id(stage, "0" * 32, "abcde-999"))
    assert lineage.JOB_ID.fullmatch(lineage.job_id("0" * 32, "abcde-999"))


def test_ids_refuse_a_bad_pipeline_id():
    with pytest.raises(ValueError, match="must be 1-32 characters"):
        lineage.batch_id(stages.SCORING, "abc-", "k7f2q-1")


def test_run_keys_are_short_stable_and_distinct():
    keys = {lineage.run_key(f"scheduled__2026-11-{d:02d}T00:00:00+00:00") for d in range(1, 31)}
    assert len(keys) == 30
    assert lineage.run_key("manual__x") == lineage.run_key("manual__x")
    assert all(re.fullmatch(r"[a-z2-7]{5}", k) for k in keys)
