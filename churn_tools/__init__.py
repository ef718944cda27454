"""What runs from a checkout, never on Airflow: the ``churn`` command, the demo, the local
Airflow's setup and the Composer deploy."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]  # the checkout these tools run from
