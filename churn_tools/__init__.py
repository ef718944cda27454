"""What runs from a checkout, never on Airflow: the ``churn`` command, the demo, the local
Airflow's setup and the Composer deploy."""
