"""What runs from a checkout, never on Airflow: the ``churn`` command, the demo, the local
Airflow's setup and the Composer deploy."""

from churn_core.pipeline_params import REPO  # the checkout these tools run from

__all__ = ["REPO"]
