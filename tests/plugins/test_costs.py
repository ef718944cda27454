"""What runs spent: Dataproc's reported usage priced, the local machine's measured, summed."""

from __future__ import annotations

import datetime as dt
import json
from unittest import mock

import pytest
from google.api_core.exceptions import NotFound
from google.cloud.dataproc_v1 import Batch

from churn_airflow import costs, local_jobs, settings
from churn_core import lineage, stages, usage
from churn_core.pipeline_params import Environment

DAY = dt.date(2026, 11, 29)


def ended_batch(milli_dcu_seconds: int, shuffle_gb_seconds: int) -> Batch:
    """A Batch as Dataproc answers once it ended (a real proto, serialised both ways)."""
    return Batch(
        state=Batch.State.SUCCEEDED,
        runtime_info={"approximate_usage": {"milli_dcu_seconds": milli_dcu_seconds,
                                            "shuffle_storage_gb_seconds": shuffle_gb_seconds}},
    )  # fmt: skip


def test_googles_pricing_example_costs_what_its_page_says():
    """12 DCUs for 24 hours at the us-central1 list price: 17.28 USD."""
    spent = usage.from_batch(Batch.to_dict(ended_batch(12 * 24 * 3600 * 1000, 0)))
    assert spent == {"dcu_hours": 288.0, "shuffle_gb_hours": 0.0}
    assert usage.cost(spent) == 17.28
    shuffle = usage.from_batch(Batch.to_dict(ended_batch(0, 25 * 730 * 3600)))
    assert usage.cost(shuffle) == 1.0  # 25 GB for a month at 0.04 USD per GB-month


def test_a_batch_that_reported_nothing_and_local_usage_have_no_price():
    assert usage.from_batch(Batch.to_dict(Batch(state=Batch.State.RUNNING))) == {
        "dcu_hours": 0.0, "shuffle_gb_hours": 0.0
    }  # fmt: skip
    machine = usage.local(312.44, 540.0, 2048.4)
    assert machine == {"wall_seconds": 312.4, "cpu_seconds": 540.0, "peak_memory_mb": 2048}
    assert usage.cost(machine) is None and usage.priced(machine) == machine
    assert usage.describe(machine) == "312 s wall, 540 s CPU, 2048 MB peak"
    assert usage.describe(None) == "not measured"


def test_usage_of_several_jobs_sums_and_keeps_the_largest_peak():
    jobs = [usage.local(10, 20, 1000), usage.local(5, 4, 3000)]
    assert usage.total(jobs) == {"wall_seconds": 15.0, "cpu_seconds": 24.0,
                                 "peak_memory_mb": 3000}  # fmt: skip


def gcp_env() -> Environment:
    return Environment.gcp("my-proj", "us-central1", "data-b", "model-b", "code-b")


VALUES = {"pipeline_id": "20261129", "attempt": "k7f2q-1",
          **{f"{s.name}_batch_id": lineage.batch_id(s, "20261129", "k7f2q-1")
             for s in stages.PIPELINE}}  # fmt: skip


def test_a_pipeline_on_dataproc_costs_its_batches_that_ran(monkeypatch):
    """Tuning below its gate never ran: its batch is not found and costs nothing."""
    monkeypatch.setenv("CHURN_BACKEND", "gcp")
    monkeypatch.setenv("CHURN_PRICE_DCU_HOUR", "0.089")  # the premium tier
    answers = {VALUES["preprocessing_batch_id"]: ended_batch(3_600_000, 0),
               VALUES["training_batch_id"]: ended_batch(7_200_000, 3600)}  # fmt: skip

    def get_batch(batch_id, region, project_id):
        assert (region, project_id) == ("us-central1", "my-proj")
        if batch_id not in answers:
            raise NotFound(f"batch {batch_id}")
        return answers[batch_id]

    with mock.patch("airflow.providers.google.cloud.hooks.dataproc.DataprocHook") as hook:
        hook.return_value.get_batch.side_effect = get_batch
        spent = costs.pipeline_usage(gcp_env(), VALUES)
    assert spent == {"dcu_hours": 3.0, "shuffle_gb_hours": 1.0,
                     "cost": round(3 * 0.089 + 0.04 / 730, 4), "currency": "USD"}  # fmt: skip
    asked = [c.kwargs["batch_id"] for c in hook.return_value.get_batch.call_args_list]
    assert asked == [VALUES[f"{s.name}_batch_id"] for s in stages.PIPELINE]


def test_local_usage_is_read_from_the_jobs_the_runner_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("CHURN_BACKEND", "local")
    monkeypatch.setenv("CHURN_ROOT", str(tmp_path))
    env = Environment.local(tmp_path)
    job = local_jobs.job_dir(
        str(tmp_path), local_jobs.PIPELINE, lineage.job_id("20261129", "k7f2q-1")
    )
    job.mkdir(parents=True)
    steps = {VALUES["preprocessing_batch_id"]: usage.local(30, 50, 900),
             VALUES["training_batch_id"]: usage.local(60, 100, 1500)}  # fmt: skip
    (job / "state.json").write_text(json.dumps({"state": "SUCCEEDED", "summary": {"usage": steps}}))
    assert costs.pipeline_usage(env, VALUES) == usage.local(90, 150, 1500)

    batch = local_jobs.job_dir(str(tmp_path), local_jobs.BATCH, "churn-scoring-20261129-k7f2q-1")
    batch.mkdir(parents=True)
    (batch / "state.json").write_text(
        json.dumps({"state": "SUCCEEDED", "usage": steps[VALUES["training_batch_id"]]})
    )
    assert costs.batch_usage(env, batch.name) == usage.local(60, 100, 1500)
    assert costs.batch_usage(env, "churn-scoring-20261130-k7f2q-1") is None  # never ran


def test_a_price_that_is_not_a_number_is_named(monkeypatch):
    monkeypatch.setenv("CHURN_PRICE_DCU_HOUR", "six cents")
    with pytest.raises(ValueError, match="a CHURN_PRICE_\\* setting is not a number"):
        settings.prices()
