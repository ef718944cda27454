"""The training batches as GCPC's launcher sends them, from the committed template and our values.

Each Dataproc step of the template is resolved the way the KFP backend resolves it (pipeline
parameters down the nested DAGs, whole-value placeholders); GCPC's own code then turns the
payload into its request, which must parse strictly as a ``Batch``.
"""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
import yaml
from google.cloud.dataproc_v1 import AuthenticationConfig
from google_cloud_pipeline_components.container.v1.dataproc.utils import dataproc_util
from google_cloud_pipeline_components.container.v1.gcp_launcher.utils import json_util

from churn_core.pipeline_params import Environment, parameter_values
from pipeline.compile import TEMPLATE
from tests.dataproc_schema import strict_batch

PLACEHOLDER = re.compile(r"\{\{\$\.inputs\.parameters\['([^']+)'\]\}\}")
LAUNCHER = "google_cloud_pipeline_components.container.v1.dataproc.create_pyspark_batch.launcher"
SERVICE_ACCOUNT = "churn-runtime@acme-churn.iam.gserviceaccount.com"


def substitute(template, scope: dict):
    """KFP's placeholder rule: a string value goes in as is, any other as JSON; lists and
    structs are resolved item by item (as Vertex does; KFP's own backend did so only from
    kubeflow/pipelines#12811)."""
    if isinstance(template, list):
        return [substitute(item, scope) for item in template]
    if isinstance(template, dict):
        return {key: substitute(item, scope) for key, item in template.items()}
    if not isinstance(template, str):
        return template

    def value(match):
        found = scope[match[1]]
        return found if isinstance(found, str) else json.dumps(found)

    return PLACEHOLDER.sub(value, template)


def resolve(task: dict, scope: dict) -> dict:
    """A task's input parameters from its parent's scope (task outputs are left out:
    no batch takes one)."""
    inputs, constants = {}, {}
    for name, given in task.get("inputs", {}).get("parameters", {}).items():
        if given.get("componentInputParameter") in scope:
            inputs[name] = scope[given["componentInputParameter"]]
        elif "runtimeValue" in given:
            constants[name] = given["runtimeValue"]["constant"]
    return {**inputs, **{n: substitute(c, inputs) for n, c in constants.items()}}


def batch_requests(spec: dict, values: dict) -> dict[str, dict]:
    """Display name -> the request GCPC's launcher would send for each PySpark batch task."""
    root_inputs = spec["root"]["inputDefinitions"]["parameters"]
    defaults = {n: p["defaultValue"] for n, p in root_inputs.items() if "defaultValue" in p}
    found = {}

    def walk(tasks: dict, scope: dict):
        for task in tasks.values():
            component = spec["components"][task["componentRef"]["name"]]
            inputs = resolve(task, scope)
            if "dag" in component:
                walk(component["dag"]["tasks"], inputs)
                continue
            container = spec["deploymentSpec"]["executors"][component["executorLabel"]]
            container = container["container"]
            if LAUNCHER not in container["command"]:
                continue
            args = container["args"]
            payload = substitute(args[args.index("--payload") + 1], inputs)
            labelled = dataproc_util.insert_system_labels_into_payload(payload)
            found[task["taskInfo"]["name"]] = json_util.recursive_remove_empty(
                json.loads(labelled, strict=False)
            )

    walk(spec["root"]["dag"]["tasks"], {**defaults, **values})
    return found


def gcp_env() -> Environment:
    return Environment.gcp(
        "acme-churn",
        "europe-west4",
        "acme-churn-data",
        "acme-churn-models",
        "acme-churn-code",
        service_account=SERVICE_ACCOUNT,
        subnetwork_uri="projects/acme-churn/regions/europe-west4/subnetworks/dataproc",
    )


def requests_of(champion: dict | None = None) -> dict[str, dict]:
    values = parameter_values(gcp_env(), "20261129", dt.date(2026, 11, 29), "k7f2q-1",
                              champion=champion)  # fmt: skip
    return batch_requests(yaml.safe_load(TEMPLATE.read_text()), values)


@pytest.fixture(scope="module")
def requests() -> dict[str, dict]:
    return requests_of()


def test_every_training_batch_is_a_strict_batch_for_the_default_runtime(requests):
    assert set(requests) == {
        "Preprocess raw customers",
        "Train random forest",
        "Tune hyperparameters",
    }
    for name, request in requests.items():
        batch = strict_batch(request)
        assert batch.runtime_config.version == "3.0", name
        assert batch.pyspark_batch.python_file_uris == [
            "gs://acme-churn-code/spark_jobs/churn_ml.zip"
        ]
        assert batch.pyspark_batch.main_python_file_uri.startswith("gs://acme-churn-code/")
        assert dict(batch.runtime_config.properties)["spark.driver.memory"] == "12g"
        assert batch.labels["pipeline-id"] == "20261129"
        assert not batch.environment_config.peripherals_config.spark_history_server_config


def test_training_batches_run_with_the_pipelines_credentials(requests):
    """On runtime 3.0 these batches run with the credentials of their submitter, the
    pipeline's service account: the runtime account, the same account the scoring batch runs
    as (docs/gcp.md). Each ends by the 12 h ttl."""
    for request in requests.values():
        execution = strict_batch(request).environment_config.execution_config
        assert execution.service_account == SERVICE_ACCOUNT
        assert execution.authentication_config.user_workload_authentication_type == (
            AuthenticationConfig.AuthenticationType.AUTHENTICATION_TYPE_UNSPECIFIED
        )
        assert execution.ttl.total_seconds() == 12 * 3600


def test_each_step_takes_its_batch_whole(requests):
    """The payload is the Batch ``pipeline_params`` built, with GCPC's system labels added."""
    values = parameter_values(gcp_env(), "20261129", dt.date(2026, 11, 29), "k7f2q-1")
    for name, step in (("Preprocess raw customers", "preprocessing"), ("Train random forest",
                       "training"), ("Tune hyperparameters", "tuning")):  # fmt: skip
        sent = requests[name]
        labels = sent.pop("labels")
        expected = json_util.recursive_remove_empty(values[f"{step}_batch"])
        assert labels.items() >= expected.pop("labels").items()
        assert sent == {k: v for k, v in expected.items() if k != "labels"}


def test_the_batch_arguments_are_the_runs(requests):
    args = list(strict_batch(requests["Train random forest"]).pyspark_batch.args)
    assert args[:4] == ["--pipeline-id", "20261129", "--day", "2026-11-29"]
    assert args[args.index("--dataset-uri") + 1] == "bq://acme-churn.customer_churn_ds"


CHAMPION = {
    "version": "20261128-training-k7f2q-1",
    "model_uri": "gs://acme-churn-models/models/customer-churn-model/training/20261128/k7f2q-1",
    "seed": 42,
}


@pytest.mark.parametrize("champion", [None, CHAMPION])
def test_the_jobs_parse_the_champion_arguments_dataproc_gets(champion):
    """GCPC keeps an empty argument in the list (it drops only empty structures), so the jobs
    read 'no champion' from the very arguments Dataproc would pass."""
    import train
    import tune

    requests = requests_of(champion)
    for name, job in (("Train random forest", train), ("Tune hyperparameters", tune)):
        args = list(strict_batch(requests[name]).pyspark_batch.args)
        parsed = job.parse_args(args)
        if champion is None:
            assert args[args.index("--champion-version") + 1] == ""
            assert parsed.champion is None
        else:
            assert (parsed.champion.version, parsed.champion.model_uri, parsed.champion.seed) == (
                CHAMPION["version"],
                CHAMPION["model_uri"],
                42,
            )
