"""Assets that hand work from one DAG to the next."""

from airflow.sdk import Asset

CHAMPION_MODEL = Asset("churn://registry/customer-churn-model/champion")
BATCH_PREDICTIONS = Asset("churn://customer_churn_ds/batch_predictions")
