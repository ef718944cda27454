"""Prepares an Airflow metadata DB for these DAGs: migrates it and creates their pool.

``churn airflow-setup`` (or ``python -m churn_tools.airflow_setup``) runs it in the current
Airflow environment; the demo, ``make airflow-up``, the compose ``airflow-init`` service and the
tests all call it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from churn_airflow.settings import REGISTRY_POOL

POOLS = {REGISTRY_POOL: (1, "one champion-registry update at a time, across DAGs and runs")}


def pool_commands() -> list[list[str]]:
    """``airflow`` CLI arguments that create (or reset) the pools the DAGs use."""
    return [["pools", "set", name, str(slots), about] for name, (slots, about) in POOLS.items()]


def setup(env: dict[str, str] | None = None) -> None:
    """Migrate the DB and create the pools of the Airflow that ``env`` configures."""
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
