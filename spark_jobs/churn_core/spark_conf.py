"""Spark settings, in one place: what every session sets, and how local Spark starts.

Pure Python, no pyspark: ``churn_core.pipeline_params`` hands ``local_properties()`` to
spark-submit as ``--conf`` values (the local pipeline and scoring batches), and
``session.build_session`` applies the same when a job run with plain ``python`` starts local
Spark itself.
"""

from __future__ import annotations

import os

DRIVER_MEMORY_ENV = "CHURN_SPARK_DRIVER_MEMORY"
# Spark's default 1 GiB heap runs out at maxDepth 15 and when training on 1M rows.
DEFAULT_DRIVER_MEMORY = "4g"

# Set on every session, local or Dataproc.
COMMON = {
    # Partition folders hold run keys such as pipeline_id=20261129: keep them strings.
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
    # HotSpot does not compile a method over 8,000 bytes of bytecode; a whole-stage method
    # that large runs interpreted. Spark then generates per-operator code instead (the value
    # Spark's docs give for HotSpot). The cleaning rules make such a stage: parsing 1M rows
    # took 8.8 s with the default limit, 2.5 s with this one.
    "spark.sql.codegen.hugeMethodLimit": "8000",
}

# Local Spark (local[*] on one machine): launch settings included, so spark-submit needs them.
LOCAL = {
    "spark.driver.memory": DEFAULT_DRIVER_MEMORY,
    "spark.log.level": "WARN",
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "4",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}


def local_properties() -> dict[str, str]:
    """``LOCAL``, with the driver heap of ``CHURN_SPARK_DRIVER_MEMORY`` (e.g. ``8g``) if set."""
    memory = os.environ.get(DRIVER_MEMORY_ENV, "").strip() or DEFAULT_DRIVER_MEMORY
    return {**LOCAL, "spark.driver.memory": memory}
