"""The GCP backend: our provider subclasses and the factory, with only the provider hooks mocked.

The requests are asserted exactly: the Batch a Dataproc hook receives and the parameter_values
a Vertex AI hook receives (which are then loaded offline against the committed template).
"""

from __future__ import annotations

import copy
import datetime as dt
from unittest import mock

import pytest
import yaml
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowException, TaskDeferred
from google.api_core.exceptions import AlreadyExists, NotFound, ServiceUnavailable
from google.cloud.aiplatform_v1.types import PipelineJob, PipelineState
from google.cloud.dataproc_v1 import Batch

from churn_airflow import factory
from churn_airflow.dataproc_operators import ChurnDataprocCreateBatchOperator
from churn_airflow.run_ids import RUN_VALUES_KEY
from churn_airflow.scoring import dataproc_batch, scoring_args
from churn_airflow.vertex_lazy import LazyPipelineJobOperator, PipelineJobLink
from churn_airflow.vertex_operators import ChurnRunPipelineJobOperator
from churn_core import stages
from churn_core.pipeline_params import REPO, Environment, for_attempt, parameter_values
from tests.dataproc_schema import strict_batch
from tests.plugins.task_instances import openlineage_parent, task_instance

DATAPROC_HOOK = "airflow.providers.google.cloud.operators.dataproc.DataprocHook"
SENSOR_HOOK = "airflow.providers.google.cloud.sensors.dataproc.DataprocHook"
PIPELINE_HOOK = "airflow.providers.google.cloud.operators.vertex_ai.pipeline_job.PipelineJobHook"
TEMPLATE = REPO / "pipeline" / "compiled" / "customer_churn_training.yaml"
PROJECT, REGION = "my-proj", "us-central1"
DAY = dt.date(2026, 11, 29)
START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def gcp_env() -> Environment:
    return Environment.gcp(
        PROJECT,
        REGION,
        "data-b",
        "model-b",
        "code-b",
        service_account="sa@x.iam.gserviceaccount.com",
        subnetwork_uri="projects/p/regions/r/subnetworks/s",
        container_image="gcr.io/p/img:1",
        runtime_version="3.0",
    )


RUN_KEY = "k7f2q"


SCORING_PARAMS = {"drift_warning": 0.1, "drift_alert": 0.25, "max_reject_fraction": 0.05}


def context(try_number: int = 1, max_tries: int | None = None) -> dict:
    """A task's context; by default every try after the first is an automatic retry."""
    retries = 3  # the cloud tasks' CLOUD_RETRIES
    ti = task_instance(try_number, max_tries or retries)
    return {"ti": ti, "params": SCORING_PARAMS}


def cleared(try_number: int) -> dict:
    """The context of the first try after a clear: max_tries = previous try + retries."""
    return context(try_number, max_tries=try_number - 1 + 3)


def scoring_id(attempt: int, run_key: str = RUN_KEY) -> str:
    return f"churn-scoring-20261129-{run_key}-{attempt}"


# --- ChurnDataprocCreateBatchOperator ----------------------------------------------------------


def scoring_payload(attempt: str = f"{RUN_KEY}-1") -> dict:
    env = gcp_env()
    model = "gs://model-b/models/customer-churn-model/training/20261129/abcde-1"
    args = scoring_args(env, "20261129", DAY, model, "20261129-training-abcde-1", attempt=attempt)
    return dataproc_batch(env, "20261129", args)


PLAN = {"pipeline_id": "20261129", "run_key": RUN_KEY, "day": DAY.isoformat()}
MODEL_VERSION = "20261129-training-abcde-1"


@pytest.fixture
def champion_batch():
    """The registry's champion when a new attempt starts: builds ``scoring_payload()``."""
    with (
        mock.patch("churn_airflow.dataproc_operators.settings.environment", return_value=gcp_env()),
        mock.patch("churn_airflow.dataproc_operators.scoring.champion_batch") as build,
    ):
        build.side_effect = lambda env, plan, params, attempt: scoring_payload(attempt)
        yield build


def batch_operator(dag_id: str | None = "customer_churn_batch_scoring"):
    kwargs = {
        "task_id": "submit_scoring",
        "project_id": PROJECT,
        "region": REGION,
        "plan": PLAN,
        "stage": stages.SCORING,
        "retries": 3,
    }
    if dag_id is None:
        return ChurnDataprocCreateBatchOperator(**kwargs)
    with DAG(dag_id, schedule=None, start_date=START):
        return ChurnDataprocCreateBatchOperator(**kwargs)


def batch_name(batch_id: str) -> str:
    return f"projects/{PROJECT}/locations/{REGION}/batches/{batch_id}"


def dataproc_batches(states: dict[str, Batch.State | Exception]):
    """A get_batch side effect answering per batch id (a missing id is NotFound)."""

    def get_batch(*, batch_id, region, project_id, **_):
        assert (region, project_id) == (REGION, PROJECT)
        state = states.get(batch_id, NotFound(f"batch {batch_id}"))
        if isinstance(state, Exception):
            raise state
        job = {"args": scoring_payload()["pyspark_batch"]["args"]}
        return Batch(
            name=batch_name(batch_id), state=state, pyspark_batch=job, operation=f"op-{batch_id}"
        )

    return get_batch


@pytest.fixture
def dataproc_hook(champion_batch):
    with mock.patch(DATAPROC_HOOK) as hook_class:
        hook = hook_class.return_value

        def create_batch(*, batch_id, **_):
            operation = mock.MagicMock()
            operation.metadata.batch = batch_name(batch_id)
            return operation

        hook.create_batch.side_effect = create_batch
        yield hook


LABELS = {
    "app": "customer-churn",
    "pipeline-id": "20261129",
    "airflow-dag-id": "customer-churn-batch-scoring",
    "airflow-task-id": "submit-scoring",
    "airflow-dag-display-name": "customer-churn-batch-scoring",
}


def test_submit_creates_the_batch_of_the_first_attempt(dataproc_hook):
    payload = scoring_payload()
    expected_batch = {**copy.deepcopy(payload), "labels": LABELS}
    dataproc_hook.get_batch.side_effect = dataproc_batches({scoring_id(1): Batch.State.RUNNING})
    ctx = context(1)
    result = batch_operator().execute(ctx)

    assert result == {"batch_id": scoring_id(1), "state": "RUNNING", "model_version": MODEL_VERSION}
    dataproc_hook.create_batch.assert_called_once()
    kwargs = dataproc_hook.create_batch.call_args.kwargs
    assert kwargs["region"] == REGION
    assert kwargs["project_id"] == PROJECT
    assert kwargs["batch_id"] == scoring_id(1)
    assert kwargs["request_id"] is None
    assert kwargs["batch"] == expected_batch
    Batch(kwargs["batch"])  # still a valid Batch with the added labels
    # asynchronous: no waiting in the submit task, one look at the state
    dataproc_hook.wait_for_batch.assert_not_called()
    assert [c.kwargs["batch_id"] for c in dataproc_hook.get_batch.call_args_list] == [scoring_id(1)]
    ctx["ti"].xcom_push.assert_any_call(
        key="dataproc_batch",
        value={"project_id": PROJECT, "region": REGION, "batch_id": scoring_id(1)},
    )


def test_submit_outside_a_dag_labels_the_batch_as_adhoc(dataproc_hook):
    dataproc_hook.get_batch.side_effect = dataproc_batches({scoring_id(1): Batch.State.PENDING})
    result = batch_operator(dag_id=None).execute(context(1))
    assert result == {"batch_id": scoring_id(1), "state": "PENDING", "model_version": MODEL_VERSION}
    labels = dataproc_hook.create_batch.call_args.kwargs["batch"]["labels"]
    assert labels == {
        "app": "customer-churn",
        "pipeline-id": "20261129",
        "airflow-dag-id": "adhoc-airflow",
        "airflow-task-id": "submit-scoring",
    }


@pytest.mark.parametrize("earlier", [Batch.State.SUCCEEDED, Batch.State.RUNNING])
def test_a_retry_waits_on_an_earlier_batch_that_runs_or_succeeded(dataproc_hook, earlier):
    dataproc_hook.get_batch.side_effect = dataproc_batches({scoring_id(1): earlier})
    result = batch_operator().execute(context(2))
    assert result == {
        "batch_id": scoring_id(1),
        "state": earlier.name,
        "model_version": MODEL_VERSION,
    }
    dataproc_hook.create_batch.assert_not_called()


def test_a_third_try_finds_the_second_attempt_that_succeeded(dataproc_hook):
    dataproc_hook.get_batch.side_effect = dataproc_batches(
        {scoring_id(1): Batch.State.FAILED, scoring_id(2): Batch.State.SUCCEEDED}
    )
    result = batch_operator().execute(context(3))
    assert result == {
        "batch_id": scoring_id(2),
        "state": "SUCCEEDED",
        "model_version": MODEL_VERSION,
    }
    dataproc_hook.create_batch.assert_not_called()
    # newest first: the second attempt was looked at before the first
    assert [c.kwargs["batch_id"] for c in dataproc_hook.get_batch.call_args_list] == [scoring_id(2)]


@pytest.mark.parametrize(
    "earlier",
    [Batch.State.FAILED, Batch.State.CANCELLED, NotFound("gone")],
    ids=["failed", "cancelled", "not-found"],
)
def test_a_retry_after_a_failure_starts_a_new_batch(dataproc_hook, earlier):
    dataproc_hook.get_batch.side_effect = dataproc_batches(
        {scoring_id(1): earlier, scoring_id(2): Batch.State.PENDING}
    )
    result = batch_operator().execute(context(2))
    assert result == {"batch_id": scoring_id(2), "state": "PENDING", "model_version": MODEL_VERSION}
    dataproc_hook.create_batch.assert_called_once()
    kwargs = dataproc_hook.create_batch.call_args.kwargs
    assert kwargs["batch_id"] == scoring_id(2)
    assert kwargs["batch"]["pyspark_batch"] == scoring_payload(f"{RUN_KEY}-2")["pyspark_batch"]
    assert [c.kwargs["batch_id"] for c in dataproc_hook.get_batch.call_args_list] == [
        scoring_id(1),
        scoring_id(2),
    ]


def test_a_cleared_task_scores_again_even_after_a_success(dataproc_hook):
    """Clearing a succeeded scoring task is a request to re-score: a new batch."""
    dataproc_hook.get_batch.side_effect = dataproc_batches(
        {scoring_id(1): Batch.State.SUCCEEDED, scoring_id(2): Batch.State.PENDING}
    )
    result = batch_operator().execute(cleared(2))
    assert result == {"batch_id": scoring_id(2), "state": "PENDING", "model_version": MODEL_VERSION}
    assert dataproc_hook.create_batch.call_args.kwargs["batch_id"] == scoring_id(2)


def test_new_work_scores_with_the_registrys_champion_of_that_moment(dataproc_hook, champion_batch):
    """So a submit cleared after a rollback scores with the restored champion."""
    dataproc_hook.get_batch.side_effect = dataproc_batches({scoring_id(2): Batch.State.PENDING})
    task_context = cleared(2)
    batch_operator().execute(task_context)
    champion_batch.assert_called_once_with(gcp_env(), PLAN, task_context, f"{RUN_KEY}-2")


def test_a_retry_that_re_attaches_reports_its_batchs_model_and_resolves_nothing(
    dataproc_hook, champion_batch
):
    dataproc_hook.get_batch.side_effect = dataproc_batches({scoring_id(1): Batch.State.RUNNING})
    assert batch_operator().execute(context(2))["model_version"] == MODEL_VERSION
    champion_batch.assert_not_called()


@pytest.mark.parametrize(
    ("earlier", "cancelled"),
    [(Batch.State.RUNNING, True), (Batch.State.PENDING, True), (Batch.State.SUCCEEDED, False)],
)
def test_a_clear_cancels_the_batch_of_a_try_before_it_that_still_runs(
    dataproc_hook, earlier, cancelled
):
    """One writer per partition: the old batch must not commit over the new one's rows."""
    dataproc_hook.get_batch.side_effect = dataproc_batches(
        {scoring_id(1): earlier, scoring_id(2): Batch.State.PENDING}
    )
    result = batch_operator().execute(cleared(2))
    assert result["batch_id"] == scoring_id(2)
    cancel = dataproc_hook.get_batch_client.return_value.cancel_operation
    if cancelled:
        cancel.assert_called_once_with({"name": f"op-{scoring_id(1)}"})
    else:
        cancel.assert_not_called()


def test_submit_attaches_when_its_own_batch_already_exists(dataproc_hook):
    """A task restarted within the same try (worker lost) re-attaches to its batch."""
    dataproc_hook.create_batch.side_effect = AlreadyExists("batch exists")
    dataproc_hook.get_batch.side_effect = dataproc_batches({scoring_id(1): Batch.State.RUNNING})
    result = batch_operator().execute(context(1))
    assert result == {"batch_id": scoring_id(1), "state": "RUNNING", "model_version": MODEL_VERSION}
    dataproc_hook.create_batch.assert_called_once()


def test_batch_operator_templates():
    op = batch_operator()
    assert {"batch", "batch_id", "project_id", "region", "plan"} <= set(op.template_fields)
    assert op.asynchronous is True
    assert op.deferrable is False


# --- DataprocBatchSensor from the factory --------------------------------------------------------


@pytest.fixture
def gcp_backend(monkeypatch):
    monkeypatch.setenv("CHURN_BACKEND", "gcp")
    monkeypatch.setenv("CHURN_PROJECT", PROJECT)
    monkeypatch.setenv("CHURN_CODE_BUCKET", "code-b")
    monkeypatch.setenv("CHURN_MODEL_BUCKET", "model-b")
    monkeypatch.setenv("CHURN_DATA_BUCKET", "data-b")
    for name in ("REGION", "SERVICE_ACCOUNT"):
        monkeypatch.delenv(f"CHURN_{name}", raising=False)


def factory_tasks() -> dict:
    """Every factory task in a DAG, fed by a plan task as the DAGs feed them."""
    from airflow.sdk import task

    with DAG("customer_churn_factory_test", schedule=None, start_date=START):

        @task(multiple_outputs=True)
        def plan_run() -> dict:
            return {}

        plan = plan_run()
        submit = factory.scoring_batch("submit_scoring", plan)
        return {
            "plan": plan,
            "wait": factory.input_sensor("wait_for_training_data", plan["input_marker"]),
            "training": factory.training_pipeline("run_training_pipeline", plan),
            "submit": submit,
            "sensor": factory.scoring_sensor("wait_for_scoring", submit),
        }


def from_xcom(value, task_id: str, key: str) -> bool:
    from airflow.sdk.definitions.xcom_arg import PlainXComArg

    return isinstance(value, PlainXComArg) and (value.operator.task_id, value.key) == (task_id, key)


def rendered_sensor():
    """The factory's sensor with the values its templates would render to."""
    sensor = factory_tasks()["sensor"]
    sensor.batch_id, sensor.project_id, sensor.region = scoring_id(1), PROJECT, REGION
    return sensor


def test_batch_sensor_succeeds_on_succeeded(gcp_backend):
    with mock.patch(SENSOR_HOOK) as hook_class:
        hook = hook_class.return_value
        hook.get_batch.return_value = Batch(state=Batch.State.SUCCEEDED)
        assert rendered_sensor().poke(context()) is True
    hook.get_batch.assert_called_once_with(
        batch_id=scoring_id(1), region=REGION, project_id=PROJECT
    )


def test_batch_sensor_waits_while_running(gcp_backend):
    with mock.patch(SENSOR_HOOK) as hook_class:
        hook_class.return_value.get_batch.return_value = Batch(state=Batch.State.RUNNING)
        assert rendered_sensor().poke(context()) is False


@pytest.mark.parametrize(
    ("state", "message"),
    [(Batch.State.FAILED, "Batch failed"), (Batch.State.CANCELLED, "Batch was cancelled")],
)
def test_batch_sensor_fails_on_a_failed_batch(gcp_backend, state, message):
    with mock.patch(SENSOR_HOOK) as hook_class:
        hook_class.return_value.get_batch.return_value = Batch(state=state)
        with pytest.raises(AirflowException, match=message):
            rendered_sensor().poke(context())


def test_batch_sensor_settings(gcp_backend):
    from airflow.providers.google.cloud.sensors.dataproc import DataprocBatchSensor

    sensor = factory_tasks()["sensor"]
    assert type(sensor) is DataprocBatchSensor
    assert sensor.mode == "reschedule"
    assert sensor.poke_interval == 60
    assert sensor.timeout == 13 * 3600  # the batch's 12 h ttl and an hour in the queue
    assert (sensor.retries, sensor.retry_exponential_backoff) == (3, True)  # a failed poll
    assert from_xcom(sensor.batch_id, "submit_scoring", "batch_id")
    assert sensor.project_id == "{{ var.value.get('churn_project', 'my-proj') }}"
    assert sensor.region == "{{ var.value.get('churn_region', 'us-central1') }}"


# --- ChurnRunPipelineJobOperator ------------------------------------------------------------------


def job_id(attempt: int) -> str:
    return f"churn-training-20261129-{RUN_KEY}-{attempt}"


def values(attempt: int = 1, ti=None) -> dict:
    """The run's values for ``attempt``; with ``ti``, its batches under that task's run."""
    values = parameter_values(gcp_env(), "20261129", DAY, f"{RUN_KEY}-{attempt}")
    if ti is None:
        return values
    properties = {**values["spark_properties"], **openlineage_parent(ti)}
    return for_attempt({**values, "spark_properties": properties}, f"{RUN_KEY}-{attempt}")


def pipeline_arguments(deferrable: bool = False, **overrides) -> dict:
    return {
        "task_id": "run_training_pipeline",
        "project_id": PROJECT,
        "region": REGION,
        "display_name": "customer-churn-training-20261129",
        "template_path": str(TEMPLATE),
        "pipeline_root": "gs://model-b/pipeline-root",
        "parameter_values": values(),
        "run_key": RUN_KEY,
        "enable_caching": False,
        "labels": {"app": "customer-churn"},
        "deferrable": deferrable,
        "poll_interval": 60,
        "retries": 3,
        **overrides,
    }


def pipeline_operator(deferrable: bool = False, **overrides) -> ChurnRunPipelineJobOperator:
    return ChurnRunPipelineJobOperator(**pipeline_arguments(deferrable, **overrides))


def submitted_job(job_id: str, state: str):
    """What PipelineJobHook.submit_pipeline_job returns: an aiplatform PipelineJob (mocked)."""
    job = mock.MagicMock(job_id=job_id, location=REGION)
    job.to_dict.return_value = {
        "name": f"projects/{PROJECT}/locations/{REGION}/pipelineJobs/{job_id}",
        "state": state,
    }
    return job


def vertex_job(job_id: str, state: PipelineState) -> PipelineJob:
    return PipelineJob(
        name=f"projects/{PROJECT}/locations/{REGION}/pipelineJobs/{job_id}",
        display_name="customer-churn-training-20261129",
        state=state,
    )


def vertex_jobs(states: dict[str, PipelineState]):
    """A get_pipeline_job side effect answering per job id (a missing id is NotFound)."""

    def get_pipeline_job(*, project_id, region, pipeline_job_id, **_):
        assert (project_id, region) == (PROJECT, REGION)
        if pipeline_job_id not in states:
            raise NotFound(f"job {pipeline_job_id}")
        return vertex_job(pipeline_job_id, states[pipeline_job_id])

    return get_pipeline_job


@pytest.fixture
def pipeline_hook():
    with mock.patch(PIPELINE_HOOK) as hook_class:
        yield hook_class.return_value


def pushed(ctx) -> dict:
    return {c.kwargs["key"]: c.kwargs["value"] for c in ctx["ti"].xcom_push.call_args_list}


def test_pipeline_job_first_attempt(pipeline_hook):
    pipeline_hook.submit_pipeline_job.return_value = submitted_job(
        job_id(1), "PIPELINE_STATE_SUCCEEDED"
    )
    ctx = context(1)
    result = pipeline_operator().execute(ctx)

    assert result["state"] == "PIPELINE_STATE_SUCCEEDED"
    pipeline_hook.submit_pipeline_job.assert_called_once()
    pipeline_hook.get_pipeline_job.assert_not_called()  # no earlier try to look for
    kwargs = pipeline_hook.submit_pipeline_job.call_args.kwargs
    assert kwargs["job_id"] == job_id(1)
    assert kwargs["parameter_values"] == values(1, ctx["ti"])
    assert kwargs["project_id"] == PROJECT
    assert kwargs["region"] == REGION
    assert kwargs["display_name"] == "customer-churn-training-20261129"
    assert kwargs["template_path"] == str(TEMPLATE)
    assert kwargs["pipeline_root"] == "gs://model-b/pipeline-root"
    assert kwargs["enable_caching"] is False
    # the billing export joins the job and its batches on the run's pipeline_id
    assert kwargs["labels"] == {"app": "customer-churn", "pipeline-id": "20261129"}
    assert pushed(ctx)["pipeline_job_id"] == job_id(1)
    assert pushed(ctx)[RUN_VALUES_KEY] == values(1, ctx["ti"])
    pipeline_hook.submit_pipeline_job.return_value.wait.assert_called_once()


def test_pipeline_job_cancelled_fails_the_task(pipeline_hook):
    """The provider counts a CANCELLED job as success when not deferred; we do not."""
    pipeline_hook.submit_pipeline_job.return_value = submitted_job(
        job_id(1), "PIPELINE_STATE_CANCELLED"
    )
    with pytest.raises(AirflowException, match=f"{job_id(1)} ended PIPELINE_STATE_CANCELLED"):
        pipeline_operator().execute(context(1))


@pytest.mark.parametrize(
    "earlier",
    [PipelineState.PIPELINE_STATE_FAILED, PipelineState.PIPELINE_STATE_CANCELLED, None],
    ids=["failed", "cancelled", "not-found"],
)
def test_a_retry_after_a_failed_job_submits_a_new_one(pipeline_hook, earlier):
    pipeline_hook.get_pipeline_job.side_effect = vertex_jobs(
        {job_id(1): earlier} if earlier else {}
    )
    pipeline_hook.submit_pipeline_job.return_value = submitted_job(
        job_id(2), "PIPELINE_STATE_SUCCEEDED"
    )
    ctx = context(2)
    assert pipeline_operator().execute(ctx)["state"] == "PIPELINE_STATE_SUCCEEDED"
    kwargs = pipeline_hook.submit_pipeline_job.call_args.kwargs
    assert kwargs["job_id"] == job_id(2)
    sent = kwargs["parameter_values"]
    assert sent == values(2, ctx["ti"])
    changed = {k: v for k, v in sent.items() if v != values(1, ctx["ti"])[k]}
    preprocessing = changed.pop("preprocessing_batch")["pyspark_batch"]["args"]
    assert preprocessing[preprocessing.index("--attempt") + 1] == f"{RUN_KEY}-2"
    assert {k: changed.pop(k) for k in list(changed) if not k.startswith(("train", "tun"))} == {
        "preprocessing_batch_id": f"churn-preprocessing-20261129-{RUN_KEY}-2",
        "attempt": f"{RUN_KEY}-2",
    }
    assert sorted(changed) == [  # the batches and folders of attempt 2
        "training_batch", "training_batch_id", "training_metrics_uri",
        "tuning_batch", "tuning_batch_id", "tuning_metrics_uri",
    ]  # fmt: skip
    assert changed["training_batch_id"] == f"churn-training-20261129-{RUN_KEY}-2"
    assert changed["tuning_metrics_uri"].endswith(f"/20261129/{RUN_KEY}-2")
    assert sent["pipeline_id"] == "20261129"  # the lineage key does not change
    assert pushed(ctx)[RUN_VALUES_KEY] == values(2, ctx["ti"])


def test_each_pipeline_batch_names_the_task_as_its_openlineage_parent(pipeline_hook):
    """Vertex hands each step's Batch whole to Dataproc: its properties carry the task run's
    OpenLineage identity (the provider's ids) and turn Dataplex lineage on."""
    pipeline_hook.submit_pipeline_job.return_value = submitted_job(
        job_id(1), "PIPELINE_STATE_SUCCEEDED"
    )
    ctx = context(1)
    pipeline_operator().execute(ctx)
    sent = pipeline_hook.submit_pipeline_job.call_args.kwargs["parameter_values"]
    parent = openlineage_parent(ctx["ti"])
    assert parent["spark.openlineage.parentJobName"] == "customer_churn_scoring.submit"
    for step in ("preprocessing", "training", "tuning"):
        properties = dict(strict_batch(sent[f"{step}_batch"]).runtime_config.properties)
        assert {k: v for k, v in properties.items() if "lineage" in k} == {
            **parent,
            "spark.dataproc.lineage.enabled": "true",
        }


def test_a_retry_after_a_polling_error_re_attaches_to_the_running_job(pipeline_hook):
    """Try 1 deferred, the trigger's poll failed: try 2 waits on the same job, no second one."""
    pipeline_hook.get_pipeline_job.side_effect = vertex_jobs(
        {job_id(1): PipelineState.PIPELINE_STATE_RUNNING}
    )
    ctx = context(2)
    with pytest.raises(TaskDeferred) as deferred:
        pipeline_operator(deferrable=True).execute(ctx)
    pipeline_hook.submit_pipeline_job.assert_not_called()
    assert_waits_a_slice(deferred.value, job_id(1), logged=[])
    # downstream tasks read the attempt that ran: try 1's values, not try 2's
    assert pushed(ctx) == {"pipeline_job_id": job_id(1), RUN_VALUES_KEY: values(1, ctx["ti"])}


def test_a_retry_after_a_job_that_succeeded_does_not_run_it_again(pipeline_hook):
    job = vertex_job(job_id(1), PipelineState.PIPELINE_STATE_SUCCEEDED)
    pipeline_hook.get_pipeline_job.side_effect = vertex_jobs({job_id(1): job.state})
    result = pipeline_operator().execute(context(2))
    pipeline_hook.submit_pipeline_job.assert_not_called()
    assert result == PipelineJob.to_dict(job)


def test_a_cleared_task_retrains_even_after_a_success(pipeline_hook):
    pipeline_hook.get_pipeline_job.side_effect = vertex_jobs(
        {job_id(1): PipelineState.PIPELINE_STATE_SUCCEEDED}
    )
    pipeline_hook.submit_pipeline_job.return_value = submitted_job(
        job_id(2), "PIPELINE_STATE_SUCCEEDED"
    )
    pipeline_operator().execute(cleared(2))
    pipeline_hook.get_pipeline_service_client.return_value.cancel_pipeline_job.assert_not_called()
    assert pipeline_hook.submit_pipeline_job.call_args.kwargs["job_id"] == job_id(2)


def test_another_run_of_the_same_pipeline_id_gets_its_own_job(pipeline_hook):
    pipeline_hook.submit_pipeline_job.return_value = submitted_job(
        "churn-training-20261129-zzzzz-1", "PIPELINE_STATE_SUCCEEDED"
    )
    pipeline_operator(run_key="zzzzz").execute(context(1))
    kwargs = pipeline_hook.submit_pipeline_job.call_args.kwargs
    assert kwargs["job_id"] == "churn-training-20261129-zzzzz-1"
    assert kwargs["parameter_values"]["attempt"] == "zzzzz-1"


def test_pipeline_job_that_exists_and_succeeded_is_not_resubmitted(pipeline_hook):
    pipeline_hook.submit_pipeline_job.side_effect = AlreadyExists("job exists")
    job = vertex_job(job_id(1), PipelineState.PIPELINE_STATE_SUCCEEDED)
    pipeline_hook.get_pipeline_job.return_value = job
    ctx = context(1)
    result = pipeline_operator().execute(ctx)
    assert pushed(ctx)["pipeline_job_id"] == job_id(1)
    pipeline_hook.submit_pipeline_job.assert_called_once()
    pipeline_hook.get_pipeline_job.assert_called_once_with(
        project_id=PROJECT, region=REGION, pipeline_job_id=job_id(1)
    )
    assert result == PipelineJob.to_dict(job)


@pytest.mark.parametrize(
    "state", [PipelineState.PIPELINE_STATE_FAILED, PipelineState.PIPELINE_STATE_CANCELLED]
)
def test_pipeline_job_that_exists_and_ended_badly_fails(pipeline_hook, state):
    pipeline_hook.submit_pipeline_job.side_effect = AlreadyExists("job exists")
    pipeline_hook.get_pipeline_job.return_value = vertex_job(job_id(1), state)
    with pytest.raises(AirflowException, match=f"already ended {state.name}"):
        pipeline_operator().execute(context(1))


def test_pipeline_job_that_exists_and_runs_without_deferring_is_polled(pipeline_hook, monkeypatch):
    pipeline_hook.submit_pipeline_job.side_effect = AlreadyExists("job exists")
    running, done = PipelineState.PIPELINE_STATE_RUNNING, PipelineState.PIPELINE_STATE_SUCCEEDED
    states = iter([running, running, done])
    pipeline_hook.get_pipeline_job.side_effect = lambda **_: vertex_job(job_id(1), next(states))
    monkeypatch.setattr("churn_airflow.vertex_operators.time.sleep", lambda s: None)
    result = pipeline_operator().execute(context(1))
    assert result["state"] == PipelineState.PIPELINE_STATE_SUCCEEDED
    assert pipeline_hook.get_pipeline_job.call_count == 3


def assert_waits_a_slice(deferred: TaskDeferred, job: str, logged: list[str]) -> None:
    """Deferred for one ``poll_interval`` on Airflow's own trigger (Composer 3's triggerer has
    none of this project), then ``poll`` looks at ``job`` on the worker."""
    path, kwargs = deferred.trigger.serialize()
    assert path == "airflow.providers.standard.triggers.temporal.DateTimeTrigger"
    wait = kwargs["moment"] - dt.datetime.now(dt.UTC)
    assert dt.timedelta(seconds=50) < wait <= dt.timedelta(seconds=60)  # poll_interval: 60
    assert (deferred.method_name, deferred.kwargs) == ("poll", {"job_id": job, "logged": logged})


def test_pipeline_job_deferrable_submit_waits_in_slices_on_a_standard_trigger(pipeline_hook):
    pipeline_hook.submit_pipeline_job.return_value = submitted_job(
        job_id(1), "PIPELINE_STATE_PENDING"
    )
    with pytest.raises(TaskDeferred) as deferred:
        pipeline_operator(deferrable=True).execute(context(1))
    assert_waits_a_slice(deferred.value, job_id(1), logged=[])
    pipeline_hook.submit_pipeline_job.return_value.wait.assert_not_called()


def test_pipeline_job_execute_complete_fails_on_error_event():
    op = pipeline_operator(deferrable=True)
    message = "Pipeline Job x completed with status PIPELINE_STATE_CANCELLED"
    with pytest.raises(AirflowException, match=message):
        op.execute_complete(context(), {"status": "error", "message": message})
    assert op.execute_complete(
        context(), {"status": "success", "message": "", "job": {"a": 1}}
    ) == {"a": 1}


def test_killing_the_task_cancels_the_job_it_re_attached_to(pipeline_hook):
    pipeline_hook.get_pipeline_job.side_effect = vertex_jobs(
        {job_id(1): PipelineState.PIPELINE_STATE_RUNNING}
    )
    client = pipeline_hook.get_pipeline_service_client.return_value
    client.pipeline_job_path.side_effect = lambda p, loc, job: f"projects/{p}/locations/{loc}/{job}"
    op = pipeline_operator(deferrable=True)
    op.on_kill()  # nothing attached yet: nothing to cancel
    client.cancel_pipeline_job.assert_not_called()
    with pytest.raises(TaskDeferred):
        op.execute(context(2))
    op.on_kill()
    pipeline_hook.get_pipeline_service_client.assert_called_with(region=REGION)
    client.cancel_pipeline_job.assert_called_once_with(
        name=f"projects/{PROJECT}/locations/{REGION}/{job_id(1)}"
    )


@pytest.mark.parametrize(
    ("before", "cancelled"),
    [
        (PipelineState.PIPELINE_STATE_RUNNING, True),
        (PipelineState.PIPELINE_STATE_PENDING, True),
        (PipelineState.PIPELINE_STATE_SUCCEEDED, False),
        (PipelineState.PIPELINE_STATE_FAILED, False),
        (None, False),
    ],
)
def test_the_first_try_after_a_clear_cancels_a_job_from_before_it(pipeline_hook, before, cancelled):
    """Try 1 deferred, the user cleared the task: try 2 is new work, and try 1's job must not
    write on beside it (the provider's trigger cannot cancel it: only the next try can)."""
    pipeline_hook.get_pipeline_job.side_effect = vertex_jobs({job_id(1): before} if before else {})
    pipeline_hook.submit_pipeline_job.return_value = submitted_job(
        job_id(2), "PIPELINE_STATE_SUCCEEDED"
    )
    client = pipeline_hook.get_pipeline_service_client.return_value
    pipeline_operator().execute(cleared(2))
    assert pipeline_hook.submit_pipeline_job.call_args.kwargs["job_id"] == job_id(2)
    if cancelled:
        client.cancel_pipeline_job.assert_called_once_with(
            name=f"projects/{PROJECT}/locations/{REGION}/pipelineJobs/{job_id(1)}"
        )
    else:
        client.cancel_pipeline_job.assert_not_called()


def test_pipeline_operator_templates_its_ids():
    fields = set(ChurnRunPipelineJobOperator.template_fields)
    assert {"display_name", "parameter_values", "project_id", "region", "run_key"} <= fields
    assert {"template_path", "pipeline_root", "service_account"} <= fields


@pytest.mark.parametrize("attempt", [1, 2])
def test_submitted_values_load_against_the_committed_template(pipeline_hook, attempt):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform

    pipeline_hook.get_pipeline_job.side_effect = NotFound("no earlier job")
    pipeline_hook.submit_pipeline_job.return_value = submitted_job(
        job_id(attempt), "PIPELINE_STATE_SUCCEEDED"
    )
    pipeline_operator().execute(context(attempt))
    sent = pipeline_hook.submit_pipeline_job.call_args.kwargs

    job = aiplatform.PipelineJob(
        display_name=sent["display_name"],
        template_path=sent["template_path"],
        job_id=sent["job_id"],
        pipeline_root=sent["pipeline_root"],
        parameter_values=sent["parameter_values"],
        enable_caching=sent["enable_caching"],
        labels=sent["labels"],
        credentials=AnonymousCredentials(),
        project=PROJECT,
        location=REGION,
    )
    assert job.job_id == job_id(attempt)
    assert job.to_dict()["runtimeConfig"]["parameterValues"] == sent["parameter_values"]
    assert job.to_dict()["labels"] == {"app": "customer-churn", "pipeline-id": "20261129"}

    declared = yaml.safe_load(TEMPLATE.read_text())["root"]["inputDefinitions"]["parameters"]
    required = {name for name, spec in declared.items() if not spec.get("isOptional")}
    assert required <= set(sent["parameter_values"])
    assert set(sent["parameter_values"]) <= set(declared)


# --- LazyPipelineJobOperator: what the DAG holds ------------------------------------------------


def test_lazy_operator_sends_exactly_what_the_real_one_sends(pipeline_hook, caplog):
    pipeline_hook.get_pipeline_job.side_effect = NotFound("no earlier job")
    pipeline_hook.submit_pipeline_job.return_value = submitted_job(
        job_id(2), "PIPELINE_STATE_SUCCEEDED"
    )
    ctx = context(2)
    lazy = LazyPipelineJobOperator(**pipeline_arguments())
    assert lazy.execute(ctx)["state"] == "PIPELINE_STATE_SUCCEEDED"
    sent = pipeline_hook.submit_pipeline_job.call_args.kwargs

    pipeline_hook.reset_mock()
    pipeline_operator().execute(context(2))
    assert sent == pipeline_hook.submit_pipeline_job.call_args.kwargs
    assert sent["job_id"] == job_id(2)
    assert pushed(ctx)["pipeline_job_id"] == job_id(2)
    assert "outside of the Task Runner" not in caplog.text


def test_lazy_operator_kill_cancels_the_job_it_started(pipeline_hook):
    lazy = LazyPipelineJobOperator(**pipeline_arguments())

    def submit_then_killed(**kwargs):
        lazy.on_kill()  # Airflow calls it from the task's signal handler, while execute runs
        return submitted_job(job_id(1), "PIPELINE_STATE_SUCCEEDED")

    pipeline_hook.submit_pipeline_job.side_effect = submit_then_killed
    client = pipeline_hook.get_pipeline_service_client.return_value
    lazy.on_kill()  # nothing started yet: nothing to cancel
    client.cancel_pipeline_job.assert_not_called()
    lazy.execute(context(1))
    client.cancel_pipeline_job.assert_called_once()
    client.pipeline_job_path.assert_called_once_with(PROJECT, REGION, job_id(1))
    lazy.on_kill()  # the try has ended: nothing is attached
    client.cancel_pipeline_job.assert_called_once()


def test_lazy_operator_killed_after_a_failed_poll_leaves_the_job_to_the_retry(pipeline_hook):
    """Under load Airflow's scheduler can end a try whose poll failed as if it were killed:
    the job runs on, and the automatic retry re-attaches to it."""
    pipeline_hook.get_pipeline_job.side_effect = ServiceUnavailable("poll failed")
    client = pipeline_hook.get_pipeline_service_client.return_value
    lazy = LazyPipelineJobOperator(**pipeline_arguments(deferrable=True))
    with pytest.raises(ServiceUnavailable):
        lazy.poll(context(), None, job_id=job_id(1), logged=[])
    lazy.on_kill()
    client.cancel_pipeline_job.assert_not_called()


def test_lazy_operator_defers_and_completes_through_the_real_one(pipeline_hook):
    pipeline_hook.submit_pipeline_job.return_value = submitted_job(
        job_id(1), "PIPELINE_STATE_PENDING"
    )
    lazy = LazyPipelineJobOperator(**pipeline_arguments(deferrable=True))
    with pytest.raises(TaskDeferred) as deferred:
        lazy.execute(context(1))
    assert_waits_a_slice(deferred.value, job_id(1), logged=[])
    job = vertex_job(job_id(1), PipelineState.PIPELINE_STATE_SUCCEEDED)
    pipeline_hook.get_pipeline_job.return_value = job
    assert lazy.poll(context(), None, **deferred.value.kwargs) == PipelineJob.to_dict(job)
    # a wait deferred by a release that waited on the provider's trigger ends as it did
    with pytest.raises(AirflowException, match="CANCELLED"):
        lazy.execute_complete(context(), {"status": "error", "message": "ended CANCELLED"})
    done = {"status": "success", "message": "", "job": {"state": "PIPELINE_STATE_SUCCEEDED"}}
    assert lazy.execute_complete(context(), done) == done["job"]


def test_lazy_operator_hands_the_real_one_every_task_argument():
    """The DAG's default_args and the task's own: retries decide retry or first try."""
    with DAG("d", schedule=None, start_date=START, default_args={"owner": "ml", "retries": 1}):
        lazy = LazyPipelineJobOperator(
            **pipeline_arguments(retries=3),
            retry_delay=dt.timedelta(minutes=2),
            execution_timeout=dt.timedelta(hours=9),
            pool="vertex",
        )
    real = lazy.job_operator()
    for name in ("task_id", "retries", "retry_delay", "execution_timeout", "pool", "owner"):
        assert getattr(real, name) == getattr(lazy, name), name
    assert real.retries == 3 and real.owner == "ml"


def test_lazy_operator_templates_what_the_real_one_templates():
    lazy = set(LazyPipelineJobOperator.template_fields)
    assert lazy <= set(ChurnRunPipelineJobOperator.template_fields)
    assert {"display_name", "parameter_values", "project_id", "region", "run_key"} <= lazy


def test_pipeline_job_link_points_at_the_console(monkeypatch):
    from airflow.sdk.execution_time import xcom

    lazy = LazyPipelineJobOperator(**pipeline_arguments())
    stored = {"pipeline_job_id": job_id(2)}
    monkeypatch.setattr(xcom.XCom, "get_value", lambda ti_key, key: stored.get(key))
    assert PipelineJobLink().get_link(lazy, ti_key=None) == (
        "https://console.cloud.google.com/vertex-ai/locations/us-central1/pipelines/runs/"
        f"{job_id(2)}?project=my-proj"
    )
    stored.clear()
    assert PipelineJobLink().get_link(lazy, ti_key=None) == ""


# --- factory -------------------------------------------------------------------------------------


def test_factory_gcp_backend(gcp_backend):
    from airflow.providers.google.cloud.sensors.dataproc import DataprocBatchSensor
    from airflow.providers.google.cloud.sensors.gcs import GCSObjectExistenceSensor

    from churn_airflow.gcs_sensors import DayCompleteSensor

    tasks = factory_tasks()
    wait, training, submit, sensor = (tasks[k] for k in ("wait", "training", "submit", "sensor"))

    assert type(wait) is DayCompleteSensor  # the day's _SUCCESS, not its first file
    assert isinstance(wait, GCSObjectExistenceSensor)
    assert wait.deferrable is True
    assert wait.bucket == "{{ var.value.get('churn_data_bucket', 'data-b') }}"
    assert from_xcom(wait.object, "plan_run", "input_marker")  # never {{ ds }}
    assert (wait.poke_interval, wait.timeout) == (300, 12 * 3600)

    assert type(training) is LazyPipelineJobOperator
    assert training.deferrable is True
    assert training.poll_interval == 60
    assert training.enable_caching is False
    assert from_xcom(training.parameter_values, "plan_run", "parameter_values")
    assert from_xcom(training.display_name, "plan_run", "display_name")
    assert from_xcom(training.run_key, "plan_run", "run_key")
    assert training.template_path == "gs://code-b/pipeline/customer_churn_training.yaml"
    assert training.pipeline_root == (
        "gs://{{ var.value.get('churn_model_bucket', 'model-b') }}/pipeline-root"
    )
    assert training.project_id == "{{ var.value.get('churn_project', 'my-proj') }}"

    assert type(submit) is ChurnDataprocCreateBatchOperator
    assert submit.asynchronous is True
    assert submit.multiple_outputs is True  # the sensor reads its batch_id XCom
    assert submit.stage is stages.SCORING
    assert submit.batch is None  # built from the registry when new work starts
    assert from_xcom(submit.plan, "plan_run", "return_value")

    assert type(sensor) is DataprocBatchSensor
    assert sensor.mode == "reschedule"
    assert set(sensor.upstream_task_ids) == {"submit_scoring"}

    for cloud_task in (training, submit):
        assert cloud_task.retries >= 3
        assert cloud_task.retry_exponential_backoff
        assert cloud_task.retry_delay == dt.timedelta(minutes=2)


def test_factory_local_backend(monkeypatch, tmp_path):
    from churn_airflow.local_operators import (
        LocalBatchOperator,
        LocalBatchSensor,
        LocalPathSensor,
        LocalPipelineOperator,
    )

    monkeypatch.setenv("CHURN_ROOT", str(tmp_path))
    tasks = factory_tasks()
    wait, training, submit, sensor = (tasks[k] for k in ("wait", "training", "submit", "sensor"))

    assert type(wait) is LocalPathSensor
    assert wait.mode == "reschedule"
    assert wait.root == str(tmp_path.resolve())
    assert from_xcom(wait.marker, "plan_run", "input_marker")
    assert type(training) is LocalPipelineOperator
    assert from_xcom(training.parameter_values, "plan_run", "parameter_values")
    assert from_xcom(training.run_key, "plan_run", "run_key")
    assert type(submit) is LocalBatchOperator
    assert submit.stage is stages.SCORING and submit.multiple_outputs is True
    assert from_xcom(submit.plan, "plan_run", "return_value")
    assert type(sensor) is LocalBatchSensor
    assert (sensor.mode, sensor.poke_interval) == ("reschedule", 10)
    assert from_xcom(sensor.batch_id, "submit_scoring", "batch_id")


def test_factory_rejects_an_unknown_backend(monkeypatch):
    monkeypatch.setenv("CHURN_BACKEND", "aws")
    with pytest.raises(ValueError, match="CHURN_BACKEND='aws'"):
        factory.input_sensor("wait_for_scoring_input", "landing/score/dt=2026-11-29/_SUCCESS")


def job_with_steps(state: PipelineState, *, finished: bool) -> PipelineJob:
    """A pipeline job with its task details: while training runs, or once all its steps
    ended."""
    from google.cloud.aiplatform_v1.types import (
        PipelineJobDetail,
        PipelineTaskDetail,
        PipelineTaskExecutorDetail,
    )

    def at(minute: int, second: int = 0) -> dt.datetime:
        return dt.datetime(2026, 11, 29, 0, minute, second, tzinfo=dt.UTC)

    ran = PipelineTaskExecutorDetail(
        container_detail=PipelineTaskExecutorDetail.ContainerDetail(main_job="projects/p/x")
    )
    step = PipelineTaskDetail.State
    training = (
        dict(state=step.SUCCEEDED, end_time=at(9, 30)) if finished else dict(state=step.RUNNING)
    )
    tasks = [
        PipelineTaskDetail(task_name="customer-churn-training", state=step.RUNNING,
                           start_time=at(0)),  # the root: no container
        PipelineTaskDetail(task_name="Train random forest", start_time=at(4),
                           executor_detail=ran, **training),
        PipelineTaskDetail(task_name="Preprocess raw customers", state=step.SUCCEEDED,
                           start_time=at(1), end_time=at(3, 15), executor_detail=ran),
    ]  # fmt: skip
    if finished:
        tasks.append(PipelineTaskDetail(task_name="Record tuning switched off",
                                        state=step.SKIPPED, executor_detail=ran))  # fmt: skip
    job = vertex_job(job_id(1), state)
    job.job_detail = PipelineJobDetail(task_details=tasks)
    return job


def test_the_task_log_shows_each_step_of_the_job_while_it_waits_deferred(pipeline_hook):
    from structlog.testing import capture_logs

    from churn_airflow.vertex_operators import step_lines

    running = job_with_steps(PipelineState.PIPELINE_STATE_RUNNING, finished=False)
    done = job_with_steps(PipelineState.PIPELINE_STATE_SUCCEEDED, finished=True)
    assert step_lines(PipelineJob.to_dict(done)) == [
        "step Preprocess raw customers started 00:01:00 UTC, succeeded in 135 s",
        "step Train random forest started 00:04:00 UTC, succeeded in 330 s",
        "step Record tuning switched off skipped",
    ]
    assert step_lines({}) == []
    op = pipeline_operator(deferrable=True)
    pipeline_hook.get_pipeline_job.return_value = running
    with capture_logs() as logged, pytest.raises(TaskDeferred) as deferred:
        op.poll(context(), None, job_id=job_id(1), logged=[])
    so_far = [
        "step Preprocess raw customers started 00:01:00 UTC, succeeded in 135 s",
        "step Train random forest started 00:04:00 UTC",
    ]
    assert [e["event"] for e in logged] == so_far
    assert_waits_a_slice(deferred.value, job_id(1), logged=so_far)
    pipeline_hook.get_pipeline_job.return_value = done
    with capture_logs() as logged:
        result = op.poll(context(), None, **deferred.value.kwargs)
    assert [e["event"] for e in logged] == step_lines(PipelineJob.to_dict(done))[1:]
    assert result == PipelineJob.to_dict(done)
    pipeline_hook.get_pipeline_job.assert_called_with(
        project_id=PROJECT, region=REGION, pipeline_job_id=job_id(1)
    )


@pytest.mark.parametrize(
    "state", [PipelineState.PIPELINE_STATE_FAILED, PipelineState.PIPELINE_STATE_CANCELLED]
)
def test_a_job_that_ended_badly_while_deferred_fails_the_task(pipeline_hook, state):
    pipeline_hook.get_pipeline_job.return_value = vertex_job(job_id(1), state)
    with pytest.raises(AirflowException, match=f"{job_id(1)} ended {state.name}"):
        pipeline_operator(deferrable=True).poll(context(), None, job_id=job_id(1), logged=[])
