"""The contracts the Spark jobs and the Airflow side share: ids, storage layout, runtimes,
grids, PSI, Spark settings and the pipeline's parameters. Pure Python (the standard library
only), so it ships whole to Dataproc beside ``churn_ml`` and to Composer beside
``churn_airflow``."""
