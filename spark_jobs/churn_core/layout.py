"""Where each run's inputs and artifacts live (pure Python: the pipeline and the DAGs use it)."""

from __future__ import annotations

import datetime as dt

from churn_core.stages import MODELS, PREPROCESSING, SCORING, Stage

MODEL_NAME = "customer-churn-model"
DATASET = "customer_churn_ds"
TRAIN_INPUT, SCORE_INPUT = "train", "score"
# Table names, as in the lab's BigQuery dataset customer_churn_ds.
TRAINING_DATA = "training_data"
TEST_PREDICTIONS = "test_predictions"
MODEL_METRICS = "model_metrics"
FEATURE_IMPORTANCE = "model_feature_importance_scores"
BATCH_PREDICTIONS = "batch_predictions"
BATCH_REJECTS = "batch_rejects"
FEATURE_DRIFT = "feature_drift"
# Inside every model's folder, written before the folder is published: the training profile
# that scoring measures drift against (churn_ml.drift).
PROFILE_FILE = "profile.json"


def _folder(root: str, kind: str, stage: Stage, pipeline_id: str) -> str:
    return f"{root.rstrip('/')}/{kind}/{MODEL_NAME}/{stage.folder}/{pipeline_id}"


def day_partition(day: dt.date) -> str:
    """The folder of one day's raw input: ``dt=YYYY-MM-DD``."""
    return f"dt={day.isoformat()}"


def partition_day(name: str) -> dt.date | None:
    """The day of a ``day_partition`` folder name, None for any other name."""
    key, _, day = name.partition("=")
    try:
        return dt.date.fromisoformat(day) if key == "dt" else None
    except ValueError:
        return None


def landing_prefix(kind: str, day: dt.date | None = None) -> str:
    """Raw input of a kind under the data bucket or root, e.g. ``landing/train/dt=2026-11-29``."""
    if kind not in (TRAIN_INPUT, SCORE_INPUT):
        raise ValueError(f"unknown input kind {kind!r}")
    return f"landing/{kind}" + (f"/{day_partition(day)}" if day else "")


# A day's input is complete when its producer writes this empty file last, as Spark and most
# exporters do; until then the sensors wait, whatever else the folder holds. Spark skips it.
COMPLETE_MARKER = "_SUCCESS"


def input_marker(kind: str, day: dt.date) -> str:
    """The completion marker of a day's input, e.g. ``landing/train/dt=2026-11-29/_SUCCESS``."""
    return f"{landing_prefix(kind, day)}/{COMPLETE_MARKER}"


def _under(root: str, kind: str, stage: Stage, pipeline_id: str, attempt: str) -> str:
    """Every attempt has folders of its own: a registered model's files never change."""
    if stage not in MODELS:
        raise ValueError(f"{stage.name} saves no model; expected one of {[s.name for s in MODELS]}")
    return f"{_folder(root, kind, stage, pipeline_id)}/{attempt}"


def model_uri(root: str, stage: Stage, pipeline_id: str, attempt: str) -> str:
    return _under(root, "models", stage, pipeline_id, attempt)


def model_version(pipeline_id: str, stage: Stage, attempt: str) -> str:
    """The registry's name of the model one attempt of a run saved under ``model_uri``."""
    return f"{pipeline_id}-{stage.folder}-{attempt}"


def metrics_uri(root: str, stage: Stage, pipeline_id: str, attempt: str) -> str:
    return _under(root, "metrics", stage, pipeline_id, attempt)


# The documents of a model's metrics folder: the evaluation's numbers and its page (the
# pipeline's components write both on Vertex, where this package is not installed).
METRICS_JSON, REPORT_HTML = "metrics.json", "report.html"


def metrics_file(root: str, stage: Stage, pipeline_id: str, attempt: str) -> str:
    return f"{metrics_uri(root, stage, pipeline_id, attempt)}/{METRICS_JSON}"


def report_file(root: str, stage: Stage, pipeline_id: str, attempt: str) -> str:
    return f"{metrics_uri(root, stage, pipeline_id, attempt)}/{REPORT_HTML}"


def scoring_stats_file(root: str, pipeline_id: str) -> str:
    """The counts of a scoring run, which its check compares with the tables."""
    return drift_folder(root, pipeline_id) + "/run_stats.json"


def gcs_object(uri: str) -> tuple[str, str]:
    """``gs://bucket/name`` -> (bucket, name)."""
    if not uri.startswith("gs://"):
        raise ValueError(f"{uri!r} is not a gs:// URI")
    bucket, _, name = uri.removeprefix("gs://").partition("/")
    return bucket, name


def lineage_file(root: str) -> str:
    """The local backend's OpenLineage events, one JSON document a line (churn_core.lineage_conf):
    the Airflow tasks' and the Spark jobs' alike."""
    return f"{root.rstrip('/')}/lineage/events.jsonl"


def commit_record(root: str, stage: Stage, pipeline_id: str) -> str:
    """Which attempt of a run may commit the partitions a stage writes by ``pipeline_id``
    (churn_ml.commit_record): preprocessing's ``training_data``, scoring's three tables."""
    if stage not in (PREPROCESSING, SCORING):
        raise ValueError(f"{stage.name} writes no partition by pipeline_id alone")
    return f"{_folder(root, 'metrics', stage, pipeline_id)}/commit.json"


# The drift report of a scoring run, in its ``drift_folder`` (churn_ml.drift_report writes it).
DRIFT_JSON, DRIFT_PNG, DRIFT_HTML = "drift.json", "drift.png", "drift.html"


def drift_folder(root: str, pipeline_id: str) -> str:
    """The scoring run's metrics folder: ``drift.json``, ``drift.png`` and ``drift.html``
    (churn_ml.drift) beside ``run_stats.json``."""
    return _folder(root, "metrics", SCORING, pipeline_id)


def profile_uri(model_uri: str) -> str:
    """The training profile of a model version, inside its folder."""
    return f"{model_uri.rstrip('/')}/{PROFILE_FILE}"


def table_uri(dataset_uri: str, table: str) -> str:
    """``bq://project.dataset`` -> ``bq://project.dataset.table``; a folder -> ``folder/table``."""
    if dataset_uri.startswith("bq://"):
        return f"{dataset_uri}.{table}"
    return f"{dataset_uri.rstrip('/')}/{table}"
