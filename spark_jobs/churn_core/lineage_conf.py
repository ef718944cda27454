"""How OpenLineage reaches a Spark job: Spark properties, in the OpenLineage Spark integration's
own vocabulary (pure Python: the pipeline, the DAGs and the jobs import it).

- ``spark.openlineage.parent*`` / ``root*``: the Airflow task that started the job, injected by
  the Airflow OpenLineage provider (``churn_airflow.lineage_parent``), so a job's events name
  the task run as their parent and the DAG run as their root.
- ``spark.openlineage.transport.*``: where a job sends its events. The local backend's default
  is a file under the root (``local_transport``), the one the local Airflow writes too;
  ``http`` (Marquez, or any OpenLineage endpoint) is read as the provider injects it.
- ``spark.dataproc.lineage.enabled``: Dataproc Serverless records the batch in Dataplex
  lineage, under the same parent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from churn_core import layout

NAMESPACE = "customer-churn"  # the OpenLineage namespace of the Spark jobs
RUN_FACET = "churn_run"  # pipeline_id, attempt, model_version
PARTITION_FACET = "churn_partition"  # a table's pipeline_id partition
FACET_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/BaseFacet"
PREFIX = "spark.openlineage."
TRANSPORT = PREFIX + "transport."
DATAPROC_LINEAGE = {"spark.dataproc.lineage.enabled": "true"}
# ParentRunFacet fields from the provider's keys (airflow.providers.openlineage.utils.spark)
PARENT_KEYS = {
    "namespace": PREFIX + "parentJobNamespace",
    "name": PREFIX + "parentJobName",
    "run_id": PREFIX + "parentRunId",
    "root_namespace": PREFIX + "rootParentJobNamespace",
    "root_name": PREFIX + "rootParentJobName",
    "root_run_id": PREFIX + "rootParentRunId",
}


def local_transport(root: str) -> dict[str, str]:
    """The Spark properties of the local default: append events to ``layout.lineage_file``."""
    return {
        TRANSPORT + "type": "file",
        TRANSPORT + "location": layout.lineage_file(root),
    }


def airflow_transport(root: str) -> str:
    """``[openlineage] transport`` of a local Airflow: the same file as the jobs'."""
    return json.dumps({"type": "file", "log_file_path": layout.lineage_file(root), "append": True})


def parent(properties: Mapping[str, str]) -> dict[str, str] | None:
    """The parent and root job runs the properties name; None without a parent run id."""
    found = {field: properties.get(key, "") for field, key in PARENT_KEYS.items()}
    return found if found["run_id"] and found["name"] else None


def client_transport(properties: Mapping[str, str]) -> dict | None:
    """The OpenLineage Python client's transport config for the properties' transport; None
    when they name none. ``ValueError`` for a transport a job cannot send with."""
    given = {k.removeprefix(TRANSPORT): v for k, v in properties.items() if k.startswith(TRANSPORT)}
    kind = given.get("type")
    if not kind:
        return None
    if kind == "file":
        return {"type": "file", "log_file_path": given["location"], "append": True}
    if kind == "http":
        config = {"type": "http", "url": given["url"], "endpoint": given.get("endpoint")}
        if "timeoutInMillis" in given:
            config["timeout"] = int(given["timeoutInMillis"]) / 1000
        if "auth.apiKey" in given:
            config["auth"] = {"type": "api_key", "apiKey": given["auth.apiKey"]}
        return {k: v for k, v in config.items() if v is not None}
    raise ValueError(
        f"OpenLineage transport {kind!r} in {TRANSPORT}type: a Spark job sends 'file' or 'http'"
    )
