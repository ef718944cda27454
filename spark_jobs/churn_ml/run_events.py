"""A Spark job's OpenLineage run: START when its work begins, COMPLETE or FAIL when it ends, with
the exact datasets it read and wrote, sent through the OpenLineage Python client.

Datasets are named by the OpenLineage naming spec (``gs://bucket`` + path, ``bigquery`` +
``project.dataset.table``, ``file`` + path); a table's partition of the run is the
``lineage_conf.PARTITION_FACET``. The ``lineage_conf.RUN_FACET`` names the pipeline_id, the
attempt and the model version; the parent facet the Airflow task that started the job.

Events go where the session's ``spark.openlineage.transport.*`` says. With none, or where the
client is not installed (Dataproc's runtime image: Dataplex records those batches itself,
``spark.dataproc.lineage.enabled``), the job runs and sends nothing. Sending never fails a job.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import SparkSession

from churn_core import layout, lineage_conf
from churn_core.stages import Stage
from churn_ml.session import build_session

log = logging.getLogger(__name__)

PRODUCER = "urn:customer-churn:spark-jobs"


@dataclass(frozen=True)
class DatasetRef:
    """A dataset a job reads or writes: a URI, and the ``pipeline_id`` partition of a table."""

    uri: str
    partition: str = ""

    def naming(self) -> tuple[str, str]:
        """(namespace, name) by the OpenLineage naming spec."""
        if self.uri.startswith("bq://"):
            return "bigquery", self.uri.removeprefix("bq://")
        if self.uri.startswith("gs://"):
            bucket, path = layout.gcs_object(self.uri)
            return f"gs://{bucket}", "/" + path.rstrip("/")
        return "file", str(Path(self.uri.removeprefix("file://")).resolve())


@dataclass(frozen=True)
class JobRun:
    """What one job run does, for its events."""

    job: str  # the stage's name, e.g. preprocessing
    pipeline_id: str
    attempt: str
    inputs: tuple[DatasetRef, ...]
    outputs: tuple[DatasetRef, ...]
    model_version: str = ""


def model_run(args, stage: Stage) -> JobRun:
    """What a training or tuning run reads, its ``training_data`` partition, and writes: its
    model version (the champion it is compared with is not what it was trained on)."""
    return JobRun(
        stage.name,
        args.pipeline_id,
        args.attempt,
        (DatasetRef(layout.table_uri(args.dataset_uri, layout.TRAINING_DATA), args.pipeline_id),),
        (DatasetRef(args.model_uri),),
        layout.model_version(args.pipeline_id, stage, args.attempt),
    )


@functools.cache
def _facets():
    """The custom facets, as the client's attrs classes (the client is imported only here)."""
    import attr
    from openlineage.client.generated.base import DatasetFacet, RunFacet

    @attr.define
    class ChurnRunFacet(RunFacet):
        pipeline_id: str
        attempt: str
        model_version: str | None = attr.field(default=None)

        @staticmethod
        def _get_schema() -> str:
            return lineage_conf.FACET_SCHEMA

    @attr.define
    class PartitionDatasetFacet(DatasetFacet):
        pipeline_id: str

        @staticmethod
        def _get_schema() -> str:
            return lineage_conf.FACET_SCHEMA

    return ChurnRunFacet, PartitionDatasetFacet


def event(
    run: JobRun,
    state: str,
    run_id: str,
    parent: Mapping[str, str] | None,
    error: str = "",
    when: dt.datetime | None = None,
):
    """One OpenLineage ``RunEvent`` of the run (at ``when``, by default now)."""
    from openlineage.client.event_v2 import (
        InputDataset,
        Job,
        OutputDataset,
        Run,
        RunEvent,
        RunState,
    )
    from openlineage.client.facet_v2 import error_message_run, parent_run

    churn_facet, partition_facet = _facets()
    facets = {
        lineage_conf.RUN_FACET: churn_facet(
            run.pipeline_id, run.attempt, run.model_version or None, producer=PRODUCER
        )
    }
    if parent:
        root = None
        if parent["root_run_id"]:
            root = parent_run.Root(
                run=parent_run.RootRun(runId=parent["root_run_id"]),
                job=parent_run.RootJob(
                    namespace=parent["root_namespace"], name=parent["root_name"]
                ),
            )
        facets["parent"] = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=parent["run_id"]),
            job=parent_run.Job(namespace=parent["namespace"], name=parent["name"]),
            root=root,
            producer=PRODUCER,
        )
    if error:
        facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=error, programmingLanguage="PYTHON", producer=PRODUCER
        )

    def dataset(cls, ref: DatasetRef):
        namespace, name = ref.naming()
        found = {}
        if ref.partition:
            found[lineage_conf.PARTITION_FACET] = partition_facet(ref.partition, producer=PRODUCER)
        return cls(namespace=namespace, name=name, facets=found)

    return RunEvent(
        eventType=RunState(state),
        eventTime=(when or dt.datetime.now(dt.UTC)).isoformat(),
        run=Run(runId=run_id, facets=facets),
        job=Job(namespace=lineage_conf.NAMESPACE, name=run.job),
        producer=PRODUCER,
        inputs=[dataset(InputDataset, d) for d in run.inputs],
        outputs=[dataset(OutputDataset, d) for d in run.outputs],
    )


def _client(properties: Mapping[str, str]):
    """The OpenLineage client of the transport the properties name; None without one."""
    transport = lineage_conf.client_transport(properties)
    if transport is None:
        log.info("no OpenLineage transport in %stype: no run events", lineage_conf.TRANSPORT)
        return None
    try:
        from openlineage.client import OpenLineageClient
    except ImportError:
        log.info("the OpenLineage client is not installed here: no run events")
        return None
    if transport["type"] == "file":
        Path(transport["log_file_path"]).parent.mkdir(parents=True, exist_ok=True)
    return OpenLineageClient(config={"transport": transport})


@dataclass(frozen=True)
class _Sender:
    client: object
    run_id: str
    parent: Mapping[str, str] | None


def _sender(properties: Mapping[str, str], run: JobRun) -> _Sender | None:
    """The client, the run id and the parent of the run's events; None when none are sent."""
    try:
        client = _client(properties)
        if client is None:
            return None
        from openlineage.client.uuid import generate_new_uuid

        return _Sender(client, str(generate_new_uuid()), lineage_conf.parent(properties))
    except Exception as err:  # lineage never fails the work it describes
        log.warning("OpenLineage run events of %s not sent: %s", run.job, err)
        return None


def _send(sender: Future, run: JobRun, state: str, when: dt.datetime, error: str) -> None:
    if (found := sender.result()) is None:
        return
    try:
        found.client.emit(event(run, state, found.run_id, found.parent, error, when))
    except Exception as err:  # lineage never fails the work it describes
        log.warning("OpenLineage %s event of %s not sent: %s", state, run.job, err)


@contextlib.contextmanager
def recorded(spark, run: JobRun) -> Iterator[None]:
    """The job's work between its START and its COMPLETE (or FAIL, with the error).

    Events are sent from a thread of their own, in order: the client's import (about 0.6 s)
    overlaps the job's first Spark work, and the job ends once its last event is out."""
    properties = {k: v for k, v in spark.conf.getAll.items() if k.startswith(lineage_conf.PREFIX)}
    with ThreadPoolExecutor(1, thread_name_prefix="openlineage") as sending:
        sender = sending.submit(_sender, properties, run)

        def send(state: str, error: str = "") -> None:
            sending.submit(_send, sender, run, state, dt.datetime.now(dt.UTC), error)

        send("START")
        try:
            yield
        except BaseException as err:
            send("FAIL", f"{type(err).__name__}: {err}")
            raise
        send("COMPLETE")


def run_job(run: JobRun, work: Callable[[SparkSession], dict]) -> dict:
    """A stage's Spark job: its session (``churn-<stage>``), and its ``work`` inside its
    recorded run."""
    spark = build_session(f"churn-{run.job}")
    with recorded(spark, run):
        return work(spark)
