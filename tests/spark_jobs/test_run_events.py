"""A Spark job's OpenLineage run events: transport and parent from the session's properties,
datasets named by the OpenLineage naming spec, and a failure reported, never caused."""

from __future__ import annotations

import contextlib
import json
import uuid

import pytest

from churn_core import lineage_conf
from churn_ml import run_events
from churn_ml.run_events import DatasetRef, JobRun

PARENT = {
    "spark.openlineage.parentJobNamespace": "default",
    "spark.openlineage.parentJobName": "customer_churn_scoring.submit_scoring_batch",
    "spark.openlineage.parentRunId": str(uuid.uuid4()),
    "spark.openlineage.rootParentJobNamespace": "default",
    "spark.openlineage.rootParentJobName": "customer_churn_scoring",
    "spark.openlineage.rootParentRunId": str(uuid.uuid4()),
}

RUN = JobRun(
    "batch-scoring",
    "20261129",
    "k7f2q-1",
    (DatasetRef("gs://data-b/landing/score/dt=2026-11-29"), DatasetRef("gs://model-b/models/m/")),
    (DatasetRef("bq://churn-prod.customer_churn_ds.batch_predictions", "20261129"),),
    "20261128-training-abcde-1",
)


@contextlib.contextmanager
def session_properties(spark, properties: dict):
    for key, value in properties.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key in properties:
            spark.conf.unset(key)


def events(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_parent_and_transport_read_from_spark_properties(tmp_path):
    properties = {**PARENT, **lineage_conf.local_transport(str(tmp_path))}
    assert lineage_conf.parent(properties) == {
        "namespace": "default",
        "name": "customer_churn_scoring.submit_scoring_batch",
        "run_id": PARENT["spark.openlineage.parentRunId"],
        "root_namespace": "default",
        "root_name": "customer_churn_scoring",
        "root_run_id": PARENT["spark.openlineage.rootParentRunId"],
    }
    assert lineage_conf.client_transport(properties) == {
        "type": "file",
        "log_file_path": f"{tmp_path}/lineage/events.jsonl",
        "append": True,
    }
    assert lineage_conf.parent({}) is None
    assert lineage_conf.client_transport({}) is None


def test_an_http_transport_as_the_airflow_provider_injects_it():
    """airflow.providers.openlineage.utils.spark's keys for an http transport."""
    properties = {
        "spark.openlineage.transport.type": "http",
        "spark.openlineage.transport.url": "https://marquez.example.com",
        "spark.openlineage.transport.endpoint": "api/v1/lineage",
        "spark.openlineage.transport.timeoutInMillis": "5000",
        "spark.openlineage.transport.auth.type": "api_key",
        "spark.openlineage.transport.auth.apiKey": "secret",
    }
    assert lineage_conf.client_transport(properties) == {
        "type": "http",
        "url": "https://marquez.example.com",
        "endpoint": "api/v1/lineage",
        "timeout": 5.0,
        "auth": {"type": "api_key", "apiKey": "secret"},
    }


def test_a_transport_a_job_cannot_send_with_is_refused_and_the_job_runs_on(spark, caplog):
    kafka = {"spark.openlineage.transport.type": "kafka"}
    with pytest.raises(ValueError, match=r"'kafka'.*'file' or 'http'"):
        lineage_conf.client_transport(kafka)
    with session_properties(spark, kafka), run_events.recorded(spark, RUN):
        done = True
    assert done
    assert "OpenLineage transport 'kafka'" in caplog.text


def test_datasets_are_named_by_the_openlineage_naming_spec(tmp_path):
    assert DatasetRef("gs://b/landing/score/dt=2026-11-29/").naming() == (
        "gs://b",
        "/landing/score/dt=2026-11-29",
    )
    assert DatasetRef("bq://p.ds.training_data", "x").naming() == ("bigquery", "p.ds.training_data")
    assert DatasetRef(f"file://{tmp_path}/a/../b").naming() == ("file", f"{tmp_path}/b")


def test_a_run_sends_start_and_complete_with_its_datasets_and_parent(spark, tmp_path):
    properties = {**PARENT, **lineage_conf.local_transport(str(tmp_path))}
    with session_properties(spark, properties), run_events.recorded(spark, RUN):
        pass
    start, complete = events(tmp_path / "lineage" / "events.jsonl")
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    assert start["run"]["runId"] == complete["run"]["runId"]
    assert complete["job"] == {"namespace": "customer-churn", "name": "batch-scoring", "facets": {}}
    facets = complete["run"]["facets"]
    assert {k: v for k, v in facets["churn_run"].items() if not k.startswith("_")} == {
        "pipeline_id": "20261129",
        "attempt": "k7f2q-1",
        "model_version": "20261128-training-abcde-1",
    }
    assert facets["parent"]["job"]["name"] == "customer_churn_scoring.submit_scoring_batch"
    assert facets["parent"]["run"]["runId"] == PARENT["spark.openlineage.parentRunId"]
    assert facets["parent"]["root"]["run"]["runId"] == PARENT["spark.openlineage.rootParentRunId"]
    assert [(d["namespace"], d["name"]) for d in complete["inputs"]] == [
        ("gs://data-b", "/landing/score/dt=2026-11-29"),
        ("gs://model-b", "/models/m"),
    ]
    (output,) = complete["outputs"]
    assert (output["namespace"], output["name"]) == (
        "bigquery",
        "churn-prod.customer_churn_ds.batch_predictions",
    )
    assert output["facets"]["churn_partition"]["pipeline_id"] == "20261129"


def test_a_failed_run_sends_fail_with_the_error_and_raises_it(spark, tmp_path):
    properties = lineage_conf.local_transport(str(tmp_path))
    with (
        session_properties(spark, properties),
        pytest.raises(ValueError, match="bad day"),
        run_events.recorded(spark, RUN),
    ):
        raise ValueError("bad day")
    start, fail = events(tmp_path / "lineage" / "events.jsonl")
    assert (start["eventType"], fail["eventType"]) == ("START", "FAIL")
    assert fail["run"]["facets"]["errorMessage"]["message"] == "ValueError: bad day"
    assert "parent" not in fail["run"]["facets"]  # started by hand


def test_without_a_transport_nothing_is_sent(spark, tmp_path):
    with run_events.recorded(spark, RUN):
        pass
    assert not any(tmp_path.iterdir())


def test_an_unreachable_transport_never_fails_the_job(spark, caplog):
    """A file transport whose folder cannot be made: the job's work still completes."""
    properties = lineage_conf.local_transport("/proc/no-such-root")
    with session_properties(spark, properties), run_events.recorded(spark, RUN):
        done = True
    assert done
    assert "OpenLineage run events of batch-scoring not sent" in caplog.text
