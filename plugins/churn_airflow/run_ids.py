"""The lineage key of a DAG run and the ids derived from it (pure functions, no Airflow)."""

from __future__ import annotations

import datetime as dt
import re

PIPELINE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,38}$")


def pipeline_id(run_date: dt.datetime, run_type: str, override: str | None = None) -> str:
    """``YYYYMMDD`` for scheduled and backfill runs; manual runs add ``-manual-HHMMSS``.

    The id comes from the run's own logical date (or run_after), never from the clock or a
    random source, so a re-run of the same DAG run writes to the same partition.
    """
    if override:
        if not PIPELINE_ID.fullmatch(override):
            raise ValueError(
                f"pipeline_id {override!r} must be 1-39 of [a-z0-9-], not starting with -"
            )
        return override
    day = run_date.strftime("%Y%m%d")
    if run_type == "manual":
        return f"{day}-manual-{run_date.strftime('%H%M%S')}"
    return day


def run_date(context) -> dt.datetime:
    """The logical date, or run_after for runs without one (Airflow 3 manual and asset runs)."""
    return context.get("logical_date") or context["dag_run"].run_after


def batch_attempts(step: str, pipeline_id: str, try_number: int) -> tuple[list[str], str]:
    """Batch ids of the earlier attempts of a task, and the id of this attempt.

    A retry after a failed batch gets a new id instead of re-attaching to the failure; the
    submit operators first look for an earlier attempt that succeeded or still runs, so a
    retry never scores the same day twice at once.
    """
    from pipeline.params import batch_id

    earlier = [batch_id(step, pipeline_id, attempt) for attempt in range(1, try_number)]
    return earlier, batch_id(step, pipeline_id, try_number)
