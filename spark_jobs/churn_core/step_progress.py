"""Each pipeline step's start and end as a marked line of the pipeline job's log, so the task
that waits on the job, and the demo, show the steps as they happen (pure Python).

``pipeline.components.spark_submit`` writes the lines; ``Reader`` finds them in the new part
of the log at each poll.
"""

from __future__ import annotations

from pathlib import Path

MARK = "churn-step:"


def step_of(batch_id: str) -> str:
    """``churn-<step>-<pipeline_id>-<attempt>`` -> the step (churn_core.lineage.batch_id)."""
    return batch_id.split("-")[1]


def started(batch_id: str) -> str:
    return f"{MARK} {step_of(batch_id)} started ({batch_id})"


def ended(batch_id: str, seconds: float, failed: bool = False) -> str:
    return f"{MARK} {step_of(batch_id)} {'failed' if failed else 'done'} in {seconds:.0f} s"


class Reader:
    """The step lines a log gained since the last ``new()``, without the mark."""

    def __init__(self, log: Path):
        self.log, self.offset = log, 0

    def new(self) -> list[str]:
        if not self.log.is_file():
            return []
        with self.log.open("rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a line still being written waits
        self.offset += len(complete)
        lines = [line.strip() for line in complete.decode(errors="replace").splitlines()]
        # kfp.local indents what a component prints
        return [line.removeprefix(MARK).strip() for line in lines if line.startswith(MARK)]
