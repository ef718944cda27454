"""The lineage key of a run and every cloud id built from it (pure Python: the Spark jobs, the
pipeline and the DAGs all import it).

A ``pipeline_id`` names one run's outputs: its table partitions and artifact folders. An
``attempt`` names one execution of that work, ``<run key>-<try>``: the run key comes from the
Airflow DAG run, the try from the task. Cloud ids are ``churn-<step>-<pipeline_id>-<attempt>``,
so new work always gets a new id while a retry can find the ids of the tries before it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re

from churn_core.stages import TRAINING, Stage

ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
PIPELINE_ID_MAX = 32
# JSON-schema form (anchored) for the DAG Params; Python code uses ``check_pipeline_id``.
PIPELINE_ID_PATTERN = rf"^[a-z0-9](?:[a-z0-9-]{{0,{PIPELINE_ID_MAX - 2}}}[a-z0-9])?$"
PIPELINE_ID = re.compile(PIPELINE_ID_PATTERN)
ATTEMPT = re.compile(r"^[a-z0-9]{5}-[1-9][0-9]{0,2}$")
BATCH_ID = re.compile(r"^[a-z][a-z0-9-]{2,61}[a-z0-9]$")  # Dataproc: 4-63 characters
JOB_ID = re.compile(r"^[a-z][-a-z0-9]{0,127}$")  # Vertex AI pipeline jobs


def parse_day(value: str) -> dt.date:
    """A run's day from ``YYYY-MM-DD`` (nothing else: not ``20261129``, not ``2026-02-30``)."""
    try:
        if not ISO_DAY.fullmatch(value.strip()):
            raise ValueError
        return dt.date.fromisoformat(value.strip())
    except (AttributeError, ValueError):
        raise ValueError(f"day {value!r} is not a date: use YYYY-MM-DD, e.g. 2026-11-29") from None


def check_pipeline_id(value: str) -> str:
    if not isinstance(value, str) or not PIPELINE_ID.fullmatch(value):
        raise ValueError(
            f"pipeline_id {value!r} must be 1-{PIPELINE_ID_MAX} characters of [a-z0-9-], "
            "starting and ending with a letter or digit"
        )
    return value


def run_key(run_id: str) -> str:
    """Five characters of a hash of an Airflow run id: deterministic, distinct between runs."""
    digest = hashlib.sha256(run_id.encode()).digest()
    return base64.b32encode(digest).decode()[:5].lower()


def check_attempt(value: str) -> str:
    if not isinstance(value, str) or not ATTEMPT.fullmatch(value):
        raise ValueError(f"attempt {value!r} must be a 5-character run key and a try of 1-999")
    return value


def attempt(key: str, try_number: int) -> str:
    """One execution of a run's work, e.g. ``k7f2q-1``."""
    return check_attempt(f"{key}-{try_number}")


def _checked(value: str, pattern: re.Pattern, what: str) -> str:
    if not pattern.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid {what}")
    return value


def batch_id(stage: Stage, pipeline_id: str, attempt_id: str) -> str:
    """The Dataproc batch id of one stage of one attempt."""
    check_pipeline_id(pipeline_id)
    return _checked(f"churn-{stage.name}-{pipeline_id}-{attempt_id}", BATCH_ID, "Dataproc batch id")


def job_id(pipeline_id: str, attempt_id: str) -> str:
    """The Vertex AI pipeline job id of one attempt."""
    check_pipeline_id(pipeline_id)
    return _checked(f"churn-{TRAINING.name}-{pipeline_id}-{attempt_id}", JOB_ID, "Vertex AI job id")
