"""One place that turns a run's config into the pipeline's ``parameter_values``.

The Airflow DAGs, ``pipeline.run_local`` and the tests all call ``parameter_values``; a test
loads the compiled template with these values, so a name missing on either side fails.

Every value a step takes is whole: each step's Batch, its metrics folder, the dataset's table
and name are computed here, never assembled in the template. Vertex and KFP resolve a
placeholder that stands for a whole input; one inside a longer string inside a list or a
struct is not resolved everywhere (kubeflow/pipelines#12040, #13977), so none is used.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from churn_core import batches, defaults, layout, lineage_conf, runtime, spark_conf
from churn_core.grids import DEFAULT_FOLDS, DEFAULT_GRID, grid_args
from churn_core.lineage import batch_id
from churn_core.stages import MODELS, PIPELINE, PREPROCESSING, TRAINING, TUNING

REPO = Path(__file__).resolve().parents[2]
DEFAULT_REGION = "us-central1"


def local_root() -> Path:
    """The local backend's root: ``CHURN_ROOT``, else ``.churn`` in this checkout."""
    return Path(os.environ.get("CHURN_ROOT", REPO / ".churn")).resolve()


# Dataproc Serverless: a 4-core driver with room for maxDepth 15 forests, executors autoscaled.
DATAPROC_SPARK_PROPERTIES = {
    "spark.driver.cores": "4",
    "spark.driver.memory": "12g",
    "spark.executor.cores": "4",
    "spark.executor.memory": "12g",
    "spark.dynamicAllocation.maxExecutors": "10",
    **lineage_conf.DATAPROC_LINEAGE,  # each batch in Dataplex lineage
}


@dataclass(frozen=True)
class Environment:
    """Where a backend keeps data, code and artifacts, and how its Spark batches run."""

    training_data_root: str  # raw CSV partitions dt=YYYY-MM-DD below it
    scoring_data_root: str
    dataset_uri: str
    artifact_root: str
    code_uri: str
    python_file_uris: tuple[str, ...]
    spark_properties: Mapping[str, str]
    project: str = ""
    region: str = DEFAULT_REGION
    container_image: str = ""
    runtime_version: str = runtime.DEFAULT
    service_account: str = ""  # the training pipeline's batches run as it
    scoring_service_account: str = ""  # the scoring batch runs as it
    subnetwork_uri: str = ""
    spark_history_server: str = ""

    def __post_init__(self):
        runtime.check_batch_settings(self.runtime_version, self.spark_history_server)

    @classmethod
    def local(cls, root: str | Path) -> Environment:
        root = Path(root).resolve()
        return cls(
            training_data_root=str(root / layout.landing_prefix(layout.TRAIN_INPUT)),
            scoring_data_root=str(root / layout.landing_prefix(layout.SCORE_INPUT)),
            dataset_uri=str(root / "warehouse" / layout.DATASET),
            artifact_root=str(root),
            code_uri=str(REPO / "spark_jobs"),
            python_file_uris=(str(root / "code" / "churn_ml.zip"),),
            # read when the run starts; the jobs' run events go to a file under the root
            spark_properties={
                **spark_conf.local_properties(),
                **lineage_conf.local_transport(str(root)),
            },
        )

    @classmethod
    def gcp(
        cls,
        project: str,
        region: str,
        data_bucket: str,
        model_bucket: str,
        code_bucket: str,
        **batch_settings: str,
    ) -> Environment:
        """Buckets are names without gs://; batch_settings are the Dataproc fields above."""
        code = f"gs://{code_bucket}/spark_jobs"
        return cls(
            training_data_root=f"gs://{data_bucket}/{layout.landing_prefix(layout.TRAIN_INPUT)}",
            scoring_data_root=f"gs://{data_bucket}/{layout.landing_prefix(layout.SCORE_INPUT)}",
            dataset_uri=f"bq://{project}.{layout.DATASET}",
            artifact_root=f"gs://{model_bucket}",
            code_uri=code,
            python_file_uris=(f"{code}/churn_ml.zip",),
            spark_properties=DATAPROC_SPARK_PROPERTIES,
            project=project,
            region=region,
            **batch_settings,
        )


_DEFAULT_GRID = grid_args(DEFAULT_GRID)


@dataclass(frozen=True)
class Tuning:
    """What a run tunes: on or off, the AUPR gate, the grid and the folds."""

    enabled: bool = True
    aupr_threshold: float = defaults.AUPR_THRESHOLD
    max_depth_grid: str = _DEFAULT_GRID["max_depth_grid"]
    max_bins_grid: str = _DEFAULT_GRID["max_bins_grid"]
    num_trees_grid: str = _DEFAULT_GRID["num_trees_grid"]
    folds: int = DEFAULT_FOLDS
    seed: int = defaults.SEED
    max_drop_fraction: float = defaults.MAX_DROP_FRACTION

    @classmethod
    def of_grid(cls, name: str, **settings) -> Tuning:
        return cls(**grid_args(name), **settings)


DEFAULT_TUNING = Tuning()


def for_attempt(values: dict, attempt: str) -> dict:
    """The same run's values for one attempt: its batch ids, its artifact folders and the
    steps' whole inputs that name them."""
    pipeline_id = values["pipeline_id"]
    ids = {f"{s.name}_batch_id": batch_id(s, pipeline_id, attempt) for s in PIPELINE}
    values = {**values, **ids, "attempt": attempt}
    return {**values, **step_inputs(values)}


def step_inputs(values: dict) -> dict:
    """What each step of the pipeline takes, whole, from the run's other values."""
    root, run, attempt = values["artifact_root"], values["pipeline_id"], values["attempt"]
    metrics = {stage: layout.metrics_uri(root, stage, run, attempt) for stage in MODELS}
    common = ["--pipeline-id", run, "--day", values["pipeline_execution_dt"]]
    outputs = {
        stage: [
            "--dataset-uri", values["dataset_uri"],
            "--model-uri", layout.model_uri(root, stage, run, attempt),
            "--metrics-uri", metrics[stage],
            "--attempt", attempt,
            "--seed", values["seed"],
            "--champion-version", values["champion_version"],
            "--champion-model-uri", values["champion_model_uri"],
            "--champion-seed", values["champion_seed"],
        ]
        for stage in MODELS
    }  # fmt: skip
    args = {
        PREPROCESSING: [
            *common, "--input-uri", values["training_data_uri"],
            "--dataset-uri", values["dataset_uri"],
            "--attempt", attempt,
            "--commit-record-uri", layout.commit_record(root, PREPROCESSING, run),
            "--max-drop-fraction", values["max_drop_fraction"],
        ],
        TRAINING: [*common, *outputs[TRAINING]],
        TUNING: [
            *common, *outputs[TUNING], "--folds", values["folds"],
            "--max-depth-grid", values["max_depth_grid"],
            "--max-bins-grid", values["max_bins_grid"],
            "--num-trees-grid", values["num_trees_grid"],
        ],
    }  # fmt: skip
    return {
        **{
            f"{stage.name}_batch": batches.pyspark_batch(values, stage.job, args[stage], run)
            for stage in PIPELINE
        },
        "training_metrics_uri": metrics[TRAINING],
        "tuning_metrics_uri": metrics[TUNING],
        "training_table_uri": layout.table_uri(values["dataset_uri"], layout.TRAINING_DATA),
        "dataset_display_name": f"customer-churn-{run}",
        "dataset_registry_uri": f"{root.rstrip('/')}/datasets",
        "labels": batches.labels(run),
    }


def champion_values(champion: Mapping | None) -> dict:
    """The champion the run scores beside its models (``version``, ``model_uri``, ``seed``,
    from the registry), as pipeline parameters; empty when there is none."""
    champion = champion or {}
    seed = champion.get("seed")
    return {
        "champion_version": champion.get("version", ""),
        "champion_model_uri": champion.get("model_uri", ""),
        "champion_seed": "" if seed is None else str(seed),
    }


def parameter_values(
    env: Environment,
    pipeline_id: str,
    day: dt.date,
    attempt: str,
    tuning: Tuning = DEFAULT_TUNING,
    training_data_uri: str | None = None,
    champion: Mapping | None = None,
) -> dict:
    """Every runtime parameter of the compiled template for one attempt of a run."""
    values = {
        "pipeline_id": pipeline_id,
        "pipeline_execution_dt": day.isoformat(),
        "training_data_uri": training_data_uri
        or f"{env.training_data_root}/{layout.day_partition(day)}",
        "dataset_uri": env.dataset_uri,
        "artifact_root": env.artifact_root,
        "code_uri": env.code_uri,
        "python_file_uris": list(env.python_file_uris),
        "project": env.project,
        "region": env.region,
        "container_image": env.container_image,
        "runtime_version": env.runtime_version,
        "service_account": env.service_account,
        "subnetwork_uri": env.subnetwork_uri,
        "spark_history_server": env.spark_history_server,
        "spark_properties": dict(env.spark_properties),
        "tuning": tuning.enabled,
        "aupr_threshold": tuning.aupr_threshold,
        "max_drop_fraction": tuning.max_drop_fraction,
        "max_depth_grid": tuning.max_depth_grid,
        "max_bins_grid": tuning.max_bins_grid,
        "num_trees_grid": tuning.num_trees_grid,
        "folds": tuning.folds,
        "seed": tuning.seed,
        **champion_values(champion),
    }
    return for_attempt(values, attempt)
