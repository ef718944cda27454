"""SparkSession for the jobs: local Spark when run with plain python, the cluster's otherwise."""

from __future__ import annotations

import os
import shutil
import sys

from pyspark.sql import SparkSession

from churn_core.spark_conf import COMMON, local_properties


class JavaMissingError(RuntimeError):
    pass


def require_java() -> None:
    java_home = os.environ.get("JAVA_HOME")
    if shutil.which("java") or (
        java_home and os.path.exists(os.path.join(java_home, "bin", "java"))
    ):
        return
    raise JavaMissingError(
        "Spark needs Java 17: install a JDK 17 (e.g. `apt-get install openjdk-17-jdk-headless`) "
        "and put `java` on PATH or set JAVA_HOME."
    )


def build_session(app_name: str) -> SparkSession:
    """The active session if there is one (tests, spark-submit, Dataproc), else local Spark."""
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = SparkSession.builder.appName(app_name)
    settings = dict(COMMON)
    if "PYSPARK_GATEWAY_PORT" not in os.environ:  # plain `python job.py`: start local Spark
        require_java()
        # Python workers (the compiled model's batches) run this interpreter, not PATH's python3.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = builder.master(os.environ.get("CHURN_SPARK_MASTER", "local[*]"))
        settings.update(local_properties())
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("CHURN_SPARK_LOG_LEVEL", "WARN"))
    return spark
