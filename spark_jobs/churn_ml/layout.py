"""Where each run's artifacts live (pure Python: the pipeline and the DAGs use it too)."""

MODEL_NAME = "customer-churn-model"
TRAINING = "training"
TUNING = "hyperparameter-tuning"
OPERATIONS = (TRAINING, TUNING)
DATASET = "customer_churn_ds"


def _under(root: str, kind: str, operation: str, pipeline_id: str) -> str:
    if operation not in OPERATIONS:
        raise ValueError(f"unknown operation {operation!r}; expected one of {OPERATIONS}")
    return f"{root.rstrip('/')}/{kind}/{MODEL_NAME}/{operation}/{pipeline_id}"


def model_uri(root: str, operation: str, pipeline_id: str) -> str:
    return _under(root, "models", operation, pipeline_id)


def metrics_uri(root: str, operation: str, pipeline_id: str) -> str:
    return _under(root, "metrics", operation, pipeline_id)


def metrics_file(root: str, operation: str, pipeline_id: str) -> str:
    return metrics_uri(root, operation, pipeline_id) + "/metrics.json"


def table_uri(dataset_uri: str, table: str) -> str:
    """``bq://project.dataset`` -> ``bq://project.dataset.table``; a folder -> ``folder/table``."""
    if dataset_uri.startswith("bq://"):
        return f"{dataset_uri}.{table}"
    return f"{dataset_uri.rstrip('/')}/{table}"
