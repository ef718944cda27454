"""The run records: a scoring run's stats and the record of a tuning that did not run."""

from __future__ import annotations

import dataclasses

import pytest

from churn_core.run_records import SKIPPED, RunStats, is_skipped, tuning_skipped

STATS = {"pipeline_id": "20261129", "pipeline_execution_dt": "2026-11-29",
         "model_version": "20261128-training-abcde-1", "rows_in": 101, "repeated_headers": 1,
         "customers_in": 100, "scored": 98, "rejected": 2}  # fmt: skip


def test_run_stats_round_trip_with_and_without_usage():
    stats = RunStats.from_json(STATS)
    assert stats.to_json() == STATS
    assert stats.counts() == {"rows_in": 101, "customers_in": 100, "scored": 98, "rejected": 2}
    assert stats.identity()["model_version"] == "20261128-training-abcde-1"
    spent = dataclasses.replace(stats, usage={"dcu_hours": 0.1})
    assert RunStats.from_json(spent.to_json()) == spent


def test_run_stats_name_what_a_document_lacks():
    with pytest.raises(ValueError, match=r"gs://b/run_stats.json .* has no \['scored'\]"):
        RunStats.from_json(
            {k: v for k, v in STATS.items() if k != "scored"}, "gs://b/run_stats.json"
        )


def test_the_tuning_record_is_read_as_skipped():
    record = tuning_skipped("training AUPR 0.4000 is below the threshold 0.5000", 0.4, 0.5)
    assert record["status"] == SKIPPED
    assert is_skipped(record)
    assert not is_skipped({"metrics": {"au_pr": 0.7}})
    assert not is_skipped(None)
