"""``churn lineage KEY``: where a run's data came from and what came of it, from the OpenLineage
events under the root.

KEY is a pipeline_id (a training or a scoring run) or a model version. It prints each job run
with what it read and wrote, upstream first (the raw day files, the ``training_data``
partition, the model version, the predictions scored with it), and draws the same graph as a
PNG. On GCP, Dataplex shows the batches' lineage (docs/gcp.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from churn_core import layout
from churn_core.pipeline_params import local_root
from churn_tools.lineage_graph import Dataset, Graph, build, describe, ordered, select


def read_events(path: Path) -> list[dict]:
    """The events of a file transport, one JSON document a line (a torn last line skipped)."""
    if not path.is_file():
        raise FileNotFoundError(
            f"no lineage events at {path}: run the demo or a DAG on the local backend first"
        )
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a writer stopped mid-line
    return events


def draw(graph: Graph, title: str, path: Path) -> Path:
    """Runs (orange) between the datasets they read and wrote (blue), left to right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    column: dict[object, int] = {}
    for run in ordered(graph):
        column[run] = 1 + max(
            (column[d] for d in graph.inputs[run.run_id] if d in column), default=0
        )
        for d in graph.outputs[run.run_id]:
            column[d] = max(column.get(d, 0), column[run] + 1)
    for run in graph.runs.values():  # a raw input just before the first run that reads it
        for d in graph.inputs[run.run_id]:
            column[d] = min(column.get(d, column[run] - 1), column[run] - 1)
    rows: dict[int, int] = {}
    place = {}
    for node, x in sorted(column.items(), key=lambda item: item[1]):
        place[node] = (x, rows.setdefault(x, 0))
        rows[x] += 1
    width, height = 1 + max(rows), max(rows.values())
    fig, ax = plt.subplots(figsize=(4.2 * width, 1.3 * height + 1.2))
    for run in graph.runs.values():
        for d in graph.inputs[run.run_id]:
            _arrow(ax, place[d], place[run])
        for d in graph.outputs[run.run_id]:
            _arrow(ax, place[run], place[d])
    for node, (x, y) in place.items():
        is_data = isinstance(node, Dataset)
        text = _box(node) if is_data else node.label.replace(" (", "\n(")
        box = {"boxstyle": "square" if is_data else "round", "edgecolor": "grey",
               "facecolor": "#d6e6f5" if is_data else "#fbd9b5"}  # fmt: skip
        ax.text(x, -y, text, ha="center", va="center", fontsize=7, bbox=box)
    ax.set_xlim(-0.6, width - 0.4)
    ax.set_ylim(-height + 0.4, 0.6)
    ax.axis("off")
    ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _arrow(ax, start: tuple[int, int], end: tuple[int, int]) -> None:
    (x0, y0), (x1, y1) = start, end
    ax.annotate("", (x1 - 0.42, -y1), (x0 + 0.42, -y0),
                arrowprops={"arrowstyle": "->", "color": "grey"})  # fmt: skip


def _box(dataset: Dataset) -> str:
    """A dataset in a few words: the end of its path (table, day or run) and its partition."""
    name = dataset.name
    if dataset.namespace != "bigquery":
        name = "…/" + "/".join(name.rstrip("/").split("/")[-3:])
    return name + (f"\n[pipeline_id={dataset.partition}]" if dataset.partition else "")


def parse_args(argv: list[str] | None):
    p = argparse.ArgumentParser(prog="churn lineage", description=__doc__.splitlines()[0])
    p.add_argument("key", help="a pipeline_id or a model version")
    p.add_argument("--root", type=Path, default=local_root())
    p.add_argument("--output", type=Path, help="the PNG (default <root>/lineage/<key>.png)")
    return p.parse_args(argv)


def picture(root: Path, key: str, output: Path | None = None) -> tuple[Graph, Path]:
    """The lineage of ``key`` under ``root``, drawn (by default to <root>/lineage/<key>.png).
    ``FileNotFoundError`` without events, ``LookupError`` without a run of ``key``."""
    events = Path(layout.lineage_file(str(root)))
    graph = select(build(read_events(events)), key)
    return graph, draw(graph, f"lineage of {key}", output or events.parent / f"{key}.png")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        graph, path = picture(args.root, args.key, args.output)
    except (FileNotFoundError, LookupError) as err:
        print(f"churn lineage: {err}", file=sys.stderr)
        return 1
    print(describe(graph))
    print(f"picture: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
