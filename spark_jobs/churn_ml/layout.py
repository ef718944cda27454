"""Where each run's artifacts live (pure Python: the pipeline and the DAGs use it too)."""

MODEL_NAME = "customer-churn-model"
TRAINING = "training"
TUNING = "hyperparameter-tuning"
OPERATIONS = (TRAINING, TUNING)
SCORING = "batch-scoring"
DATASET = "customer_churn_ds"
# Table names, as in the lab's BigQuery dataset customer_churn_ds.
TRAINING_DATA = "training_data"
TEST_PREDICTIONS = "test_predictions"
MODEL_METRICS = "model_metrics"
FEATURE_IMPORTANCE = "model_feature_importance_scores"
BATCH_PREDICTIONS = "batch_predictions"
BATCH_REJECTS = "batch_rejects"


def _folder(root: str, kind: str, step: str, pipeline_id: str) -> str:
    return f"{root.rstrip('/')}/{kind}/{MODEL_NAME}/{step}/{pipeline_id}"


def _under(root: str, kind: str, operation: str, pipeline_id: str) -> str:
    if operation not in OPERATIONS:
        raise ValueError(f"unknown operation {operation!r}; expected one of {OPERATIONS}")
    return _folder(root, kind, operation, pipeline_id)


def model_uri(root: str, operation: str, pipeline_id: str) -> str:
    return _under(root, "models", operation, pipeline_id)


def metrics_uri(root: str, operation: str, pipeline_id: str) -> str:
    return _under(root, "metrics", operation, pipeline_id)


def metrics_file(root: str, operation: str, pipeline_id: str) -> str:
    return metrics_uri(root, operation, pipeline_id) + "/metrics.json"


def scoring_stats_file(root: str, pipeline_id: str) -> str:
    """The counts of a scoring run, which its check compares with the tables."""
    return _folder(root, "metrics", SCORING, pipeline_id) + "/run_stats.json"


def table_uri(dataset_uri: str, table: str) -> str:
    """``bq://project.dataset`` -> ``bq://project.dataset.table``; a folder -> ``folder/table``."""
    if dataset_uri.startswith("bq://"):
        return f"{dataset_uri}.{table}"
    return f"{dataset_uri.rstrip('/')}/{table}"
