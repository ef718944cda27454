"""A Spark job as a Dataproc Serverless Batch: one shape for every batch, the scoring batch the
DAG submits and the pipeline's three, which Vertex hands whole to GCPC's Dataproc launcher.

The result is a dict that parses as ``google.cloud.dataproc_v1.Batch``. Pure Python.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from churn_core import runtime

APP_LABEL = {"app": "customer-churn"}


def labels(pipeline_id: str) -> dict[str, str]:
    """The labels of everything a run starts in the cloud, its lineage key included."""
    return {**APP_LABEL, "pipeline-id": pipeline_id}


def pyspark_batch(
    settings: Mapping,
    job: str,
    args: Iterable,
    pipeline_id: str,
    as_service_account: bool = False,
) -> dict:
    """The Batch of ``spark_jobs/<job>.py`` (a ``Stage``'s job) with ``args``.

    ``settings`` holds the fields ``Environment`` and the pipeline's parameter values name
    alike: ``code_uri``, ``python_file_uris``, ``runtime_version``, ``spark_properties``,
    ``container_image``, ``service_account`` and ``subnetwork_uri``. Every batch ends by
    ``runtime.batch_ttl()`` (the API's default is 4 h). ``as_service_account``: it runs as
    ``service_account`` whoever submits it (runtime 3.0 runs a batch with its submitter's
    credentials otherwise).
    """
    runtime_config = {
        "version": settings["runtime_version"],
        "properties": dict(settings["spark_properties"]),
    }
    if settings["container_image"]:
        runtime_config["container_image"] = settings["container_image"]
    execution = {"ttl": runtime.batch_ttl()} | {
        key: settings[key] for key in ("service_account", "subnetwork_uri") if settings[key]
    }
    if as_service_account:
        execution["authentication_config"] = {
            "user_workload_authentication_type": "SERVICE_ACCOUNT"
        }
    return {
        "pyspark_batch": {
            "main_python_file_uri": f"{settings['code_uri']}/{job}.py",
            "python_file_uris": list(settings["python_file_uris"]),
            "args": [str(arg) for arg in args],
        },
        "runtime_config": runtime_config,
        "environment_config": {"execution_config": execution},
        "labels": labels(pipeline_id),
    }
