"""Deployment settings: the backend from ``CHURN_BACKEND``, the rest from the environment.

Each GCP setting is the env var ``CHURN_<NAME>`` (what the Composer deploy sets), else its
default. Where data lives may also be overridden by an Airflow Variable ``churn_<name>``;
what decides the code that runs and who it runs as (``ENV_ONLY``) never is: whoever may
edit a Variable must not be able to run code as a service account. Operators get settings
as templates (rendered at run time); TaskFlow code calls ``environment()`` at run time.
Nothing here reads a Variable at parse time.
"""

from __future__ import annotations

import datetime as dt
import os

from churn_core import pipeline_params, runtime
from churn_core.pipeline_params import Environment

BACKENDS = ("local", "gcp")
GCP_SETTINGS = (
    "project",
    "region",
    "data_bucket",
    "model_bucket",
    "code_bucket",
    "service_account",
    "scoring_service_account",
    "subnetwork_uri",
    "spark_history_server",
    "container_image",
    "runtime_version",
)
REQUIRED = (
    "project",
    "data_bucket",
    "model_bucket",
    "code_bucket",
    "service_account",
    "scoring_service_account",
)
ENV_ONLY = (
    "code_bucket",
    "container_image",
    "runtime_version",
    "service_account",
    "scoring_service_account",
)
DEFAULTS = {"region": pipeline_params.DEFAULT_REGION, "runtime_version": runtime.DEFAULT}
TEMPLATE_OBJECT = "pipeline/customer_churn_training.yaml"
REGISTRY_POOL = "churn_registry"  # one slot: tasks that write the model registry
LOCAL_SPARK_POOL = "churn_local_spark"  # local backend: churn_core.local_slots.slots() slots


def backend() -> str:
    value = os.environ.get("CHURN_BACKEND", "local")
    if value not in BACKENDS:
        raise ValueError(f"CHURN_BACKEND={value!r}: use one of {BACKENDS}")
    return value


def retrain_on_drift() -> bool:
    """``CHURN_RETRAIN_ON_DRIFT`` (default on): the training DAG also runs on a drift alert.
    Read when the DAG file is parsed, like the backend."""
    value = os.environ.get("CHURN_RETRAIN_ON_DRIFT", "true").lower()
    if value not in ("true", "false"):
        raise ValueError(f"CHURN_RETRAIN_ON_DRIFT={value!r}: use true or false")
    return value == "true"


def notifier() -> str:
    """``CHURN_NOTIFIER``: the Airflow connection (type apprise) that messages go to; empty:
    the backend's default (churn_airflow.notify)."""
    return os.environ.get("CHURN_NOTIFIER", "")


def prices():
    """The price table cloud usage is estimated with: ``CHURN_PRICE_DCU_HOUR``,
    ``CHURN_PRICE_SHUFFLE_GB_MONTH`` and ``CHURN_PRICE_CURRENCY``, else the list prices
    (churn_core.usage; docs/gcp.md gives their source)."""
    from churn_core.usage import LIST_PRICES, Prices

    try:
        return Prices(
            float(os.environ.get("CHURN_PRICE_DCU_HOUR", LIST_PRICES.dcu_hour)),
            float(os.environ.get("CHURN_PRICE_SHUFFLE_GB_MONTH", LIST_PRICES.shuffle_gb_month)),
            os.environ.get("CHURN_PRICE_CURRENCY", LIST_PRICES.currency),
        )
    except ValueError as err:
        raise ValueError(f"a CHURN_PRICE_* setting is not a number: {err}") from None


DEADLINES = {"training": "4h", "scoring": "6h"}  # after the run's logical date
_UNITS = {"s": 1, "m": 60, "h": 3600}


DEADLINE_OFF = "off"  # `airflow dags test` fails on a DAG with a deadline (apache/airflow#73428)


def _duration(name: str, value: str, example: str) -> dt.timedelta:
    number, unit = value[:-1], value[-1:]
    if unit not in _UNITS or not number.isdigit() or int(number) == 0:
        raise ValueError(
            f"{name}={value!r}: use a positive whole number of s, m or h, like {example}"
        )
    return dt.timedelta(seconds=int(number) * _UNITS[unit])


def deadline(dag: str) -> dt.timedelta | None:
    """``CHURN_<DAG>_DEADLINE`` (``90s``, ``30m``, ``6h``, or ``off``): how long after its
    logical date a run of that DAG is late. Read when the DAG file is parsed, like the
    backend."""
    name = f"CHURN_{dag.upper()}_DEADLINE"
    value = os.environ.get(name, DEADLINES[dag]).strip()
    return None if value == DEADLINE_OFF else _duration(name, value, "6h, or off")


CLOUD_POLL = "60s"


def cloud_poll_seconds() -> int:
    """``CHURN_CLOUD_POLL`` (``30s``, ``2m``): how often the gcp backend looks at its Vertex
    pipeline job (the task log then shows the steps that started or ended) and its scoring
    batch."""
    value = os.environ.get("CHURN_CLOUD_POLL", CLOUD_POLL).strip()
    return int(_duration("CHURN_CLOUD_POLL", value, "60s").total_seconds())


def local_root() -> str:
    return str(pipeline_params.local_root())


def _fallback(name: str) -> str:
    return os.environ.get(f"CHURN_{name.upper()}", DEFAULTS.get(name, ""))


def template(name: str) -> str:
    """A Jinja template of one GCP setting, for operator arguments (an ``ENV_ONLY`` one is
    its value)."""
    if name not in GCP_SETTINGS:
        raise KeyError(name)
    if name in ENV_ONLY:
        return _fallback(name)
    return f"{{{{ var.value.get('churn_{name}', '{_fallback(name)}') }}}}"


def template_path() -> str:
    return f"gs://{template('code_bucket')}/{TEMPLATE_OBJECT}"


def value(name: str) -> str:
    """One GCP setting, read at run time."""
    from airflow.sdk import Variable

    if name not in GCP_SETTINGS:
        raise KeyError(name)
    if name in ENV_ONLY:
        return _fallback(name)
    return Variable.get(f"churn_{name}", default=_fallback(name))


def environment():
    """The pipeline Environment of this deployment (call at run time only).

    Bad settings (a missing one, an unknown runtime, a history server the runtime cannot
    attach) raise a one-sentence ValueError here, before anything is submitted.
    """
    if backend() == "local":
        return Environment.local(local_root())
    missing = [n for n in REQUIRED if not value(n)]
    if missing:
        raise ValueError(
            "the gcp backend needs the settings "
            + ", ".join(f"CHURN_{n.upper()}" for n in missing)
            + " (env vars of the Composer environment, as the deploy sets them)"
        )
    batch = (
        "service_account",
        "scoring_service_account",
        "subnetwork_uri",
        "spark_history_server",
        "container_image",
    )
    return Environment.gcp(
        value("project"),
        value("region"),
        value("data_bucket"),
        value("model_bucket"),
        value("code_bucket"),
        runtime_version=value("runtime_version"),
        **{name: value(name) for name in batch},
    )
