"""Prepares an Airflow for these DAGs: migrates its DB, creates their pools and its lineage folder.

``churn airflow-setup`` (or ``python -m churn_tools.airflow_setup``) runs it in the current
Airflow environment; the demo, ``make airflow-up``, the compose ``airflow-init`` service and the
tests all call it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from churn_airflow.settings import LOCAL_SPARK_POOL, REGISTRY_POOL
from churn_core import local_slots

# Every deployment's pools (the Composer deploy creates these too).
POOLS = {REGISTRY_POOL: (1, "one champion-registry update at a time, across DAGs and runs")}


def local_pools() -> dict[str, tuple[int, str]]:
    """The local backend's pools besides ``POOLS``, sized from this machine."""
    about = "local pipelines at once: this machine's Spark slots (churn_core.local_slots)"
    return {LOCAL_SPARK_POOL: (local_slots.slots(), about)}


def pool_commands() -> list[list[str]]:
    """``airflow`` CLI arguments that create (or reset) the pools the DAGs use."""
    pools = {**POOLS, **local_pools()}
    return [["pools", "set", name, str(slots), about] for name, (slots, about) in pools.items()]


def lineage_folder(env: Mapping[str, str]) -> None:
    """Create the folder of a file transport's OpenLineage events (its writer does not)."""
    transport = json.loads(env.get("AIRFLOW__OPENLINEAGE__TRANSPORT") or "{}")
    if transport.get("type") == "file":
        Path(transport["log_file_path"]).parent.mkdir(parents=True, exist_ok=True)


def setup(env: dict[str, str] | None = None) -> None:
    """Migrate the DB, create the pools and the lineage folder of the Airflow that ``env``
    configures."""
    lineage_folder(os.environ if env is None else env)
    for command in (["db", "migrate"], *pool_commands()):
        subprocess.run(
            [sys.executable, "-m", "airflow", *command],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    setup()


if __name__ == "__main__":
    main()
