"""Assets that hand work from one DAG to the next."""

from airflow.sdk import Asset

CHAMPION_MODEL = Asset("churn://registry/customer-churn-model/champion")
BATCH_PREDICTIONS = Asset("churn://customer_churn_ds/batch_predictions")
# A scoring run's drift alert: its extra lists the features past the alert line and their PSIs.
FEATURE_DRIFT = Asset(name="customer_churn_drift", uri="churn://customer_churn_ds/feature_drift")
