"""Drives Airflow's Google provider against the fake cloud, as an Airflow process would.

Run by ``test_fake_cloud.py`` in a subprocess whose environment has the fake cloud
(``FAKE_CLOUD_DIR``, its ``sitecustomize`` on ``PYTHONPATH``), the metadata server, a GCS
emulator and ``AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT`` without a key. Usage::

    python fake_cloud_driver.py RESULTS.json PROJECT REGION BUCKET

It writes ``{step: {"value": ...} | {"error": "Type", "message": "..."}}``; the steps run in
order, so the request log holds their calls in that order. No repo import: only what an
Airflow process has.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
import time

RESULTS: dict[str, dict] = {}


def step(name: str, fn):
    try:
        value = fn()
        if asyncio.iscoroutine(value):
            value = asyncio.run(value)
    except Exception as exc:
        RESULTS[name] = {"error": type(exc).__name__, "message": str(exc)}
    else:
        RESULTS[name] = {"value": value}


async def trigger_events(trigger) -> list[dict]:
    return [event.payload async for event in trigger.run()]


def main(out: str, project: str, region: str, bucket: str) -> None:
    import sitecustomize

    RESULTS["sitecustomize"] = {"value": sitecustomize.__file__}
    started = time.monotonic()

    from airflow.providers.google.common.hooks.base_google import GoogleBaseHook

    def adc():
        credentials, project_id = GoogleBaseHook().get_credentials_and_project_id()
        return {
            "type": type(credentials).__module__ + "." + type(credentials).__name__,
            "project": project_id,
        }

    step("adc", adc)
    vertex(project, region, bucket)
    dataproc(project, region)
    bigquery(project)
    RESULTS["seconds"] = {"value": time.monotonic() - started}
    with open(out, "w", encoding="utf-8") as f:
        json.dump(RESULTS, f, indent=1, default=str)


def vertex(project: str, region: str, bucket: str) -> None:
    from airflow.providers.google.cloud.hooks.vertex_ai.pipeline_job import (
        PipelineJobAsyncHook,
        PipelineJobHook,
    )
    from airflow.providers.google.cloud.triggers.vertex_ai import RunPipelineJobTrigger
    from google.cloud.aiplatform_v1 import PipelineJob

    hook = PipelineJobHook()
    template = f"gs://{bucket}/templates/tiny.json"
    root = f"gs://{bucket}/pipeline-root"

    def submit(job_id: str, **values):
        job = hook.submit_pipeline_job(
            project_id=project,
            region=region,
            display_name="tiny",
            template_path=template,
            job_id=job_id,
            pipeline_root=root,
            parameter_values={"day": "2026-11-29", **values},
            labels={"pipeline": "tiny"},
            service_account=f"runner@{project}.iam.gserviceaccount.com",
        )
        return {"job_id": job.job_id, "name": job.resource_name}

    def get(job_id: str):
        job = hook.get_pipeline_job(project_id=project, region=region, pipeline_job_id=job_id)
        return job.state.name

    def trigger(job_id: str):
        return trigger_events(
            RunPipelineJobTrigger(
                conn_id="google_cloud_default",
                project_id=project,
                location=region,
                job_id=job_id,
                poll_interval=0.05,
            )
        )

    step("vertex.submit", lambda: submit("tiny-1"))
    step("vertex.get_1", lambda: get("tiny-1"))
    step("vertex.trigger", lambda: trigger("tiny-1"))
    step("vertex.get_after", lambda: get("tiny-1"))
    step("vertex.submit_again", lambda: submit("tiny-1"))
    step("vertex.get_missing", lambda: get("tiny-none"))

    async def async_get(job_id: str):
        job = await PipelineJobAsyncHook().get_pipeline_job(
            project_id=project, location=region, job_id=job_id
        )
        return job.state.name

    step("vertex.flaky_submit", lambda: submit("tiny-flaky-1"))
    step("vertex.flaky_get_1", lambda: async_get("tiny-flaky-1"))
    step("vertex.flaky_get_2", lambda: async_get("tiny-flaky-1"))
    step("vertex.flaky_trigger", lambda: trigger("tiny-flaky-1"))
    step("vertex.flaky_trigger_retry", lambda: trigger("tiny-flaky-1"))
    step("vertex.doomed_submit", lambda: submit("tiny-doomed-1"))
    step("vertex.doomed_trigger", lambda: trigger("tiny-doomed-1"))

    def cancel():
        submit("tiny-cancel-1")  # the hook keeps the job it submitted
        hook.cancel_pipeline_job()
        return get("tiny-cancel-1")

    step("vertex.cancel", cancel)

    async def cancel_again():
        client = await PipelineJobAsyncHook().get_pipeline_service_client(region=region)
        name = client.pipeline_job_path(project, region, "tiny-cancel-1")
        await client.cancel_pipeline_job(request={"name": name})

    step("vertex.cancel_again", cancel_again)

    def create(job_id: str, values: dict):
        spec = hook.get_pipeline_job(project_id=project, region=region, pipeline_job_id="tiny-1")
        job = PipelineJob(
            display_name="direct",
            pipeline_spec=spec.pipeline_spec,
            runtime_config={"gcs_output_directory": root, "parameter_values": values},
        )
        created = hook.create_pipeline_job(
            project_id=project, region=region, pipeline_job=job, pipeline_job_id=job_id
        )
        return created.name

    step("vertex.create_bad_id", lambda: create("Tiny_2", {"day": "x"}))
    step("vertex.create_missing_param", lambda: create("tiny-3", {"n": 2}))
    step("vertex.create_wrong_type", lambda: create("tiny-4", {"day": "x", "n": 2.5}))

    def unfaked():
        return list(hook.list_pipeline_jobs(project_id=project, region=region))

    step("vertex.unfaked", unfaked)


def dataproc(project: str, region: str) -> None:
    from airflow.providers.google.cloud.hooks.dataproc import DataprocAsyncHook, DataprocHook
    from airflow.providers.google.cloud.triggers.dataproc import DataprocBatchTrigger

    hook = DataprocHook()
    batch = {
        "pyspark_batch": {
            "main_python_file_uri": "gs://code/score.py",
            "args": ["--day", "2026-11-29"],
            "python_file_uris": ["gs://code/churn.zip"],
        },
        "runtime_config": {"version": "2.2", "properties": {"spark.executor.cores": "4"}},
        "environment_config": {
            "execution_config": {"service_account": f"runner@{project}.iam.gserviceaccount.com"}
        },
        "labels": {"pipeline": "scoring"},
    }

    def create(batch_id: str, body=None):
        operation = hook.create_batch(
            region=region, project_id=project, batch=body or batch, batch_id=batch_id
        )
        return {"batch": operation.metadata.batch, "operation": operation.operation.name}

    def get(batch_id: str):
        return hook.get_batch(batch_id=batch_id, region=region, project_id=project).state.name

    async def async_get(batch_id: str):
        found = await DataprocAsyncHook().get_batch(
            batch_id=batch_id, region=region, project_id=project
        )
        return found.state.name

    def trigger(batch_id: str):
        return trigger_events(
            DataprocBatchTrigger(
                batch_id=batch_id,
                project_id=project,
                region=region,
                polling_interval_seconds=0.05,
            )
        )

    step("dataproc.create", lambda: create("score-1"))
    step("dataproc.get_1", lambda: get("score-1"))
    step("dataproc.trigger", lambda: trigger("score-1"))
    step("dataproc.create_again", lambda: create("score-1"))
    step("dataproc.get_missing", lambda: get("score-none"))
    step("dataproc.flaky_create", lambda: create("flaky-1"))
    step("dataproc.flaky_get_1", lambda: async_get("flaky-1"))
    step("dataproc.flaky_get_2", lambda: async_get("flaky-1"))
    step("dataproc.flaky_trigger", lambda: trigger("flaky-1"))
    step("dataproc.create_bad_id", lambda: create("ab"))
    unknown = {**batch, "pyspark_batch": {**batch["pyspark_batch"], "main_file": "x"}}
    step("dataproc.create_unknown_field", lambda: create("score-2", unknown))
    step("dataproc.create_no_main", lambda: create("score-3", {"pyspark_batch": {"args": ["x"]}}))

    def delete():
        hook.delete_batch(batch_id="score-1", region=region, project_id=project)
        return get("score-1")

    step("dataproc.delete", delete)

    def cancel():
        create("score-cancel")
        found = hook.get_batch(batch_id="score-cancel", region=region, project_id=project)
        hook.get_batch_client(region=region).cancel_operation({"name": found.operation})
        return get("score-cancel")

    step("dataproc.cancel", cancel)

    def operation_wait():
        operation = hook.create_batch(
            region=region, project_id=project, batch=batch, batch_id="score-wait"
        )
        result = hook.wait_for_operation(operation=operation, timeout=60)
        return result.state.name

    step("dataproc.operation_wait", operation_wait)


def bigquery(project: str) -> None:
    from airflow.providers.google.cloud.hooks.bigquery import BigQueryHook
    from google.cloud import bigquery

    def query(sql: str, **parameters):
        config = bigquery.QueryJobConfig(
            query_parameters=[
                bigquery.ScalarQueryParameter(name, kind, value)
                for name, (kind, value) in parameters.items()
            ]
        )
        client = BigQueryHook(use_legacy_sql=False).get_client(project_id=project)
        return [list(row) for row in client.query(sql, job_config=config).result()]

    count = "SELECT COUNT(*) FROM `p.d.scores` WHERE pipeline_id = @pipeline_id AND day = @day"
    day = ("DATE", dt.date(2026, 11, 29))
    step("bigquery.count", lambda: query(count, pipeline_id=("STRING", "20261129"), day=day))
    step("bigquery.other", lambda: query(count, pipeline_id=("STRING", "20261130"), day=day))
    step("bigquery.unanswered", lambda: query("SELECT 1 FROM `p.d.nothing`"))
    step("bigquery.missing_param", lambda: query(count, pipeline_id=("STRING", "20261129")))


if __name__ == "__main__":
    main(*sys.argv[1:])
