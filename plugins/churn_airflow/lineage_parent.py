"""The running Airflow task as the OpenLineage parent of the Spark jobs it starts.

The Airflow OpenLineage provider computes the identity (``spark.openlineage.parent*`` and
``root*``: the task run and the DAG run, as its own events name them); the scoring batch and
the pipeline's three batches carry it as Spark properties, so their run events, and Dataplex's
record of a Dataproc batch, hang under the task that started them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

log = logging.getLogger(__name__)


def spark_properties(properties: Mapping[str, str], context) -> dict[str, str]:
    """``properties`` with the task's identity (kept as they are if they name a parent, or
    where the OpenLineage provider is not installed)."""
    try:
        from airflow.providers.openlineage.utils.spark import (
            inject_parent_job_information_into_spark_properties,
        )
    except ImportError:
        log.warning("apache-airflow-providers-openlineage is not installed: no lineage parent")
        return dict(properties)
    return inject_parent_job_information_into_spark_properties(dict(properties), context)


def pipeline_values(values: dict, context) -> dict:
    """Pipeline parameter values whose batches name the task as their parent (the steps'
    Batches are built from ``spark_properties``: ``pipeline_params.for_attempt``)."""
    return {**values, "spark_properties": spark_properties(values["spark_properties"], context)}
