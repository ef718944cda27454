"""The Dataproc Serverless runtimes the jobs know, and the default one (pure Python).

The one home of these facts: the DAG side, the pipeline, the deploy and the lock (pyspark is
pinned to the default runtime's Spark minor, so the local backend runs what the cloud runs)
all follow it. https://docs.cloud.google.com/managed-spark/docs/concepts/versions/spark-runtime-3.0
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Runtime:
    version: str
    spark: str  # major.minor; 3.0.14 ships Spark 4.0.1
    python: str
    java: str
    history_server: bool  # a Persistent History Server can be attached
    apis: tuple[str, ...]  # services the project must enable, besides Dataproc's own


RUNTIMES = {
    "3.0": Runtime(
        "3.0",
        spark="4.0",
        python="3.12",
        java="21",
        history_server=False,
        # so named on the runtime page, in VPC-SC's list of services and in its permissions
        # (dataprocrm.*); a release note's dataproc-rm.googleapis.com is a misprint
        apis=("dataprocrm.googleapis.com",),
    ),
}
# Runtimes that exist but ship Spark 3.5: the jobs need Spark 4 (Column.try_cast, ANSI mode).
SPARK_3_5 = ("1.2", "2.2", "2.3")
DEFAULT = "3.0"
# How long any batch may run (``ExecutionConfig.ttl``; without it runtime 2.1+ kills a batch at
# 4 h, which a large tuning grid on a big day can pass). Whoever waits on a batch waits this
# long plus BATCH_QUEUE, the time a batch may wait for capacity before it starts.
BATCH_TTL_SECONDS = 12 * 3600
BATCH_QUEUE_SECONDS = 3600


def batch_ttl() -> str:
    """``BATCH_TTL_SECONDS`` as the Batch API's Duration string."""
    return f"{BATCH_TTL_SECONDS}s"


def runtime(version: str) -> Runtime:
    """The runtime of ``version``; a one-sentence ValueError for one the jobs cannot run on."""
    if version in RUNTIMES:
        return RUNTIMES[version]
    if version in SPARK_3_5:
        raise ValueError(
            f"Dataproc runtime {version} ships Spark 3.5 but the jobs need Spark "
            f"{RUNTIMES[DEFAULT].spark}: use {DEFAULT}"
        )
    raise ValueError(f"unknown Dataproc runtime version {version!r}: use one of {sorted(RUNTIMES)}")


def check_batch_settings(version: str, spark_history_server: str) -> Runtime:
    """The runtime, after checking that the batch settings suit it."""
    chosen = runtime(version)
    if spark_history_server and not chosen.history_server:
        raise ValueError(
            f"Dataproc runtime {version} does not support a Persistent History Server: "
            f"unset the history server setting ({spark_history_server}) and use the Spark UI "
            "of the batch instead"
        )
    return chosen
