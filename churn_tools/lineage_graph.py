"""The lineage graph of the Spark jobs' OpenLineage run events (pure: no I/O).

Nodes are job runs and the datasets they read and wrote, a table's ``pipeline_id`` partition
apart from the table's others; edges run from an input to its run and from a run to its
outputs. Only runs that completed are drawn: a failed attempt committed nothing. A run read
what the last run to write a dataset before it started had written: a partition replaced by a
later attempt leads to that attempt's readers only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from churn_core import lineage_conf


@dataclass(frozen=True)
class Dataset:
    namespace: str
    name: str
    partition: str = ""

    @property
    def label(self) -> str:
        where = self.name if self.namespace in ("file", "bigquery") else self.namespace + self.name
        return f"{where} [pipeline_id={self.partition}]" if self.partition else where


@dataclass(frozen=True)
class JobRun:
    run_id: str
    job: str
    pipeline_id: str
    attempt: str
    model_version: str
    parent: str  # the Airflow task that started it, "" when run by hand
    started: str  # the START event's time (ISO, UTC)
    ended: str  # the COMPLETE event's time

    @property
    def label(self) -> str:
        model = f", model {self.model_version}" if self.model_version else ""
        return f"{self.job} {self.pipeline_id} (attempt {self.attempt}{model})"


@dataclass
class Graph:
    runs: dict[str, JobRun] = field(default_factory=dict)
    inputs: dict[str, list[Dataset]] = field(default_factory=dict)  # run id -> what it read
    outputs: dict[str, list[Dataset]] = field(default_factory=dict)  # run id -> what it wrote

    def source(self, run: str, dataset: Dataset) -> str | None:
        """The run whose write of ``dataset`` ``run`` read: the last to end before it began."""
        began = self.runs[run].started
        earlier = [
            r for r, found in self.outputs.items()
            if dataset in found and self.runs[r].ended <= began
        ]  # fmt: skip
        return max(earlier, key=lambda r: self.runs[r].ended, default=None)

    def upstream(self, run: str) -> list[str]:
        return [w for d in self.inputs[run] if (w := self.source(run, d)) is not None]

    def downstream(self, run: str) -> list[str]:
        outputs = self.outputs[run]
        return [
            r for r, found in self.inputs.items() for d in found
            if d in outputs and self.source(r, d) == run
        ]  # fmt: skip


def _dataset(doc: dict) -> Dataset:
    partition = doc.get("facets", {}).get(lineage_conf.PARTITION_FACET, {})
    return Dataset(doc["namespace"], doc["name"], partition.get("pipeline_id", ""))


def build(events: Iterable[dict]) -> Graph:
    """The graph of the completed runs of the Spark jobs among ``events`` (others skipped)."""
    graph, started = Graph(), {}
    for event in events:
        facets = event.get("run", {}).get("facets", {})
        churn = facets.get(lineage_conf.RUN_FACET)
        if churn is not None and event.get("eventType") == "START":
            started[event["run"]["runId"]] = event["eventTime"]
        if event.get("eventType") != "COMPLETE" or churn is None:
            continue
        run_id = event["run"]["runId"]
        graph.runs[run_id] = JobRun(
            run_id,
            event["job"]["name"],
            churn["pipeline_id"],
            churn["attempt"],
            churn.get("model_version", ""),
            facets.get("parent", {}).get("job", {}).get("name", ""),
            started.get(run_id, event["eventTime"]),
            event["eventTime"],
        )
        graph.inputs[run_id] = [_dataset(d) for d in event.get("inputs", [])]
        graph.outputs[run_id] = [_dataset(d) for d in event.get("outputs", [])]
    return graph


def select(graph: Graph, key: str) -> Graph:
    """What led to the runs of a pipeline_id or a model version, and what came of them."""
    seeds = [r.run_id for r in graph.runs.values() if key in (r.pipeline_id, r.model_version)]
    if not seeds:
        raise LookupError(
            f"no completed run of pipeline_id or model version {key!r} in the lineage events"
        )
    chosen = set(_reach(graph, seeds, upstream=True)) | set(_reach(graph, seeds, upstream=False))
    return Graph(
        {r: graph.runs[r] for r in chosen},
        {r: graph.inputs[r] for r in chosen},
        {r: graph.outputs[r] for r in chosen},
    )


def _reach(graph: Graph, seeds: list[str], upstream: bool) -> list[str]:
    found, todo = [], list(seeds)
    while todo:
        run = todo.pop()
        if run in found:
            continue
        found.append(run)
        todo += graph.upstream(run) if upstream else graph.downstream(run)
    return found


def ordered(graph: Graph) -> list[JobRun]:
    """The runs, each after the runs whose outputs it read."""
    depth = {r: _depth(graph, r, set()) for r in graph.runs}
    return sorted(graph.runs.values(), key=lambda r: (depth[r.run_id], r.ended))


def _depth(graph: Graph, run: str, seen: set[str]) -> int:
    seen = seen | {run}
    earlier = [w for w in graph.upstream(run) if w not in seen]
    return 1 + max((_depth(graph, w, seen) for w in earlier), default=-1)


def describe(graph: Graph) -> str:
    """The graph as text: each run, what it read and what it wrote, upstream first."""
    lines = []
    for run in ordered(graph):
        started_by = f"   (started by {run.parent})" if run.parent else ""
        lines.append(f"{run.label}{started_by}")
        lines += [f"    read   {d.label}" for d in graph.inputs[run.run_id]]
        lines += [f"    wrote  {d.label}" for d in graph.outputs[run.run_id]]
    return "\n".join(lines)
