"""A DAG run's identity and a task's attempts (pure functions of what Airflow hands a task).

The plan task of each DAG calls ``identify`` once; every sensor, operator and id downstream
takes its values from the plan, never from ``ds`` or the clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from churn_core import lineage

MANUAL = "manual"
ASSET_TRIGGERED = "asset_triggered"
T = TypeVar("T")
# What the pipeline task hands downstream: the job it ran and that attempt's parameter values.
JOB_ID_KEY = "pipeline_job_id"  # also the key RunPipelineJobOperator itself pushes
RUN_VALUES_KEY = "run_parameter_values"


@dataclass(frozen=True)
class RunIdentity:
    day: dt.date  # the data day: which landing partition the run reads
    pipeline_id: str  # the lineage key of the run's outputs
    run_key: str  # the DAG run's own key: no other run shares it

    def as_dict(self) -> dict:
        return {
            "day": self.day.isoformat(),
            "pipeline_id": self.pipeline_id,
            "run_key": self.run_key,
        }


def identify(
    run_id: str,
    run_type: str,
    logical_date: dt.datetime | None,
    run_after: dt.datetime,
    pipeline_id: str | None = None,
    day: str | None = None,
    asset_tag: str | None = None,
) -> RunIdentity:
    """The day, pipeline_id and run key of a DAG run.

    The day is the ``day`` param, else the logical date, else ``run_after`` (runs triggered
    without a logical date and asset-triggered runs have none). The pipeline_id is the
    ``pipeline_id`` param, else ``YYYYMMDD`` of the day; a manual run adds ``-manual-HHMMSS``
    of its logical date or trigger time, so it never takes over a scheduled day's outputs.
    With ``asset_tag``, an asset-triggered run adds ``-<asset_tag>`` (at most one such run a
    day keeps it unique: see ``drift_watch.claim_retrain``); without, it takes its day's id.
    """
    when = logical_date or run_after
    data_day = lineage.parse_day(day) if day else when.date()
    if pipeline_id:
        key = lineage.check_pipeline_id(pipeline_id)
    elif run_type == MANUAL:
        key = f"{data_day:%Y%m%d}-{MANUAL}-{when:%H%M%S}"
    elif run_type == ASSET_TRIGGERED and asset_tag:
        key = f"{data_day:%Y%m%d}-{asset_tag}"
    else:
        key = f"{data_day:%Y%m%d}"
    return RunIdentity(data_day, key, lineage.run_key(run_id))


def identify_context(context, params: dict, asset_tag: str | None = None) -> RunIdentity:
    """``identify`` for a task's context and its DAG params ``pipeline_id`` and ``day``."""
    dag_run = context["dag_run"]
    return identify(
        dag_run.run_id,
        dag_run.run_type,
        context.get("logical_date"),
        dag_run.run_after,
        params.get("pipeline_id"),
        params.get("day"),
        asset_tag,
    )


def identity_params(verb: str) -> dict:
    """The DAG Params that choose a run's identity, ``pipeline_id`` and ``day`` (read by
    ``identify_context``); ``verb`` says what the run does with its day's input."""
    from airflow.sdk import Param

    return {
        "pipeline_id": Param(
            None,
            type=["null", "string"],
            pattern=lineage.PIPELINE_ID_PATTERN,
            description=f"Optional id to {verb} under; default: from the run's day.",
        ),
        "day": Param(
            None,
            type=["null", "string"],
            format="date",
            description=f"Optional day (YYYY-MM-DD) whose input to {verb}; default: the run's.",
        ),
    }


def tries_since_clear(try_number: int, max_tries: int, retries: int) -> range:
    """The tries of a task instance since it was last cleared (or created), this one included.

    A clear sets ``max_tries = try_number + retries``, so the first try after it is
    ``max_tries - retries + 1``; Airflow's own retry check uses the same arithmetic. Only that
    first try is new work: any later one is an automatic retry of it.
    """
    first = max_tries - retries + 1
    return range(min(max(first, 1), try_number), try_number + 1)


def attempts(key: str, ti, retries: int) -> tuple[list[str], str]:
    """(earlier attempts since the last clear, newest first; this try's attempt)."""
    tries = tries_since_clear(ti.try_number, ti.max_tries, retries)
    earlier = [lineage.attempt(key, t) for t in reversed(tries[:-1])]
    return earlier, lineage.attempt(key, ti.try_number)


def superseded(key: str, ti, retries: int) -> list[str]:
    """The attempts of the tries before the last clear (none before the first clear)."""
    first = tries_since_clear(ti.try_number, ti.max_tries, retries)[0]
    return [lineage.attempt(key, t) for t in range(1, first)]


def first_reusable(earlier: list[str], lookup: Callable[[str], T | None]) -> tuple[str, T] | None:
    """The newest earlier attempt whose job ``lookup`` finds reusable (running or succeeded),
    with what it found; None when a new job must start."""
    for attempt in earlier:
        found = lookup(attempt)
        if found is not None:
            return attempt, found
    return None
