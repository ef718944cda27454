"""Airflow glue of the churn DAGs: run ids, the model registry, and operators per backend."""
