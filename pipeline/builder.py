"""The training pipeline, defined once; a target picks only the step launchers.

``vertex``: Dataproc Serverless batches (GCPC's Dataproc launcher, given each whole Batch)
and a Vertex managed dataset (``TabularDatasetCreateOp``). ``local``: spark-submit on local
Spark and a JSON dataset record, run by ``kfp.local``. Topology, parameters and evaluation
are shared.
"""

from kfp import dsl

from churn_core import runtime
from churn_core.pipeline_params import DEFAULT_REGION, DEFAULT_TUNING
from churn_core.stages import PREPROCESSING, TRAINING, TUNING, Stage
from pipeline import components as c

PIPELINE_NAME = "customer-churn-training"
TARGETS = ("vertex", "local")
TUNING_ON_NAME = "tuning-switched-on"
TUNING_OFF_NAME = "tuning-switched-off"
GATE_NAME = "tune-if-training-aupr-meets-threshold"
SKIP_NAME = "skip-tuning-below-threshold"


def _vertex_spark(p: dict, stage: Stage):
    return c.dataproc_batch()(
        project=p["project"],
        location=p["region"],
        batch_id=p[f"{stage.name}_batch_id"],
        batch=p[f"{stage.name}_batch"],
    )


def _local_spark(p: dict, stage: Stage):
    return c.local_component(c.spark_submit)(
        batch=p[f"{stage.name}_batch"], batch_id=p[f"{stage.name}_batch_id"]
    )


def _vertex_dataset(p: dict):
    from google_cloud_pipeline_components.v1.dataset import TabularDatasetCreateOp

    return TabularDatasetCreateOp(
        project=p["project"],
        location=p["region"],
        display_name=p["dataset_display_name"],
        bq_source=p["training_table_uri"],
        labels=p["labels"],
    )


def _local_dataset(p: dict):
    return c.local_component(c.register_dataset, [c.write_file])(
        display_name=p["dataset_display_name"],
        source_uri=p["training_table_uri"],
        registry_uri=p["dataset_registry_uri"],
    )


LAUNCHERS = {"vertex": (_vertex_spark, _vertex_dataset), "local": (_local_spark, _local_dataset)}


def build(target: str):
    """The pipeline function for ``target`` ('vertex' or 'local')."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; expected one of {TARGETS}")
    spark_step, dataset_step = LAUNCHERS[target]
    wrap = c.vertex_component if target == "vertex" else c.local_component
    evaluate = wrap(c.evaluate_model, c.REPORT_HELPERS)
    skip = wrap(c.skip_tuning, [c.write_file, c.tuning_skipped])

    @dsl.pipeline(name=PIPELINE_NAME, description="Preprocess, register, train, evaluate, tune.")
    def customer_churn_training(
        pipeline_id: str,
        pipeline_execution_dt: str,
        training_data_uri: str,
        dataset_uri: str,
        artifact_root: str,
        code_uri: str,
        python_file_uris: list,
        preprocessing_batch_id: str,
        training_batch_id: str,
        tuning_batch_id: str,
        attempt: str,
        project: str = "",
        region: str = DEFAULT_REGION,
        container_image: str = "",
        runtime_version: str = runtime.DEFAULT,
        service_account: str = "",
        subnetwork_uri: str = "",
        spark_history_server: str = "",
        spark_properties: dict = {},  # noqa: B006 (a KFP default value, never mutated)
        tuning: bool = DEFAULT_TUNING.enabled,
        aupr_threshold: float = DEFAULT_TUNING.aupr_threshold,
        max_drop_fraction: float = DEFAULT_TUNING.max_drop_fraction,
        max_depth_grid: str = DEFAULT_TUNING.max_depth_grid,
        max_bins_grid: str = DEFAULT_TUNING.max_bins_grid,
        num_trees_grid: str = DEFAULT_TUNING.num_trees_grid,
        folds: int = DEFAULT_TUNING.folds,
        seed: int = DEFAULT_TUNING.seed,
        champion_version: str = "",
        champion_model_uri: str = "",
        champion_seed: str = "",
        preprocessing_batch: dict = {},  # noqa: B006 (KFP default values, never mutated)
        training_batch: dict = {},  # noqa: B006
        tuning_batch: dict = {},  # noqa: B006
        training_metrics_uri: str = "",
        tuning_metrics_uri: str = "",
        training_table_uri: str = "",
        dataset_display_name: str = "",
        dataset_registry_uri: str = "",
        labels: dict = {},  # noqa: B006
    ):
        """Daily retrain of the customer-churn random forest.

        Args:
            pipeline_id: Lineage key of the run, e.g. 20261129; tags every row, path and id.
            pipeline_execution_dt: The day the run reads, YYYY-MM-DD (its rows carry it).
            training_data_uri: Raw training CSV (file or dt= partition folder).
            dataset_uri: bq://project.dataset on GCP, a warehouse folder locally.
            artifact_root: Root of models/ and metrics/ (a gs:// bucket or a folder).
            code_uri: Folder holding the Spark job entrypoints (preprocess.py, train.py, tune.py).
            python_file_uris: The zipped churn_ml package, shipped with every batch.
            preprocessing_batch_id: Dataproc batch id of the preprocessing step.
            training_batch_id: Dataproc batch id of the training step.
            tuning_batch_id: Dataproc batch id of the tuning step.
            attempt: This execution of the run, e.g. k7f2q-1: its models and metrics get
                folders of their own, so a registered model's files never change.
            project: GCP project of the Dataproc batches and the dataset.
            region: GCP region of the Dataproc batches and the dataset.
            container_image: Custom Dataproc Serverless image, or empty for the default.
            runtime_version: Dataproc Serverless runtime version.
            service_account: Service account the batches run as.
            subnetwork_uri: Subnetwork of the batches.
            spark_history_server: Dataproc cluster of the persistent Spark history server.
            spark_properties: Spark properties of every batch (memory, executors).
            tuning: Run hyperparameter tuning at all (off: the trained model is the only one).
            aupr_threshold: Tune only when the trained model's test AUPR reaches this.
            max_drop_fraction: Preprocessing fails when more rows than this are unusable.
            max_depth_grid: Tuning grid of maxDepth, comma-separated.
            max_bins_grid: Tuning grid of maxBins, comma-separated.
            num_trees_grid: Tuning grid of numTrees, comma-separated.
            folds: Cross-validation folds of the tuning step.
            seed: Seed of the split, the folds and the forests.
            champion_version: The registry's champion when the run started, scored on the
                run's test rows beside each model; empty when there is none.
            champion_model_uri: The champion's saved model.
            champion_seed: The split seed the champion was trained with; empty when unknown
                (the champion is then incomparable).
            preprocessing_batch: The preprocessing step's Dataproc Batch, whole.
            training_batch: The training step's Dataproc Batch, whole.
            tuning_batch: The tuning step's Dataproc Batch, whole.
            training_metrics_uri: The trained model's metrics folder.
            tuning_metrics_uri: The tuned model's metrics folder.
            training_table_uri: The training_data table the dataset registers.
            dataset_display_name: The managed dataset's name.
            dataset_registry_uri: Where the local backend records its datasets.
            labels: The labels of the run's cloud resources.

        The values above the batches describe the run and are recorded with the job; the steps
        take whole values (``churn_core.pipeline_params.step_inputs`` computes them from the
        others), never a placeholder inside a longer string or a list.
        """
        p = dict(locals())
        preprocessing = spark_step(p, PREPROCESSING).set_display_name("Preprocess raw customers")
        dataset = dataset_step(p).set_display_name("Register managed dataset").after(preprocessing)
        training = (
            spark_step(p, TRAINING).set_display_name("Train random forest").after(preprocessing)
        )
        evaluation = (
            evaluate(metrics_uri=training_metrics_uri)
            .set_display_name("Evaluate trained model")
            .after(training)
        )
        au_pr = evaluation.outputs["Output"]
        tasks = [preprocessing, dataset, training, evaluation]

        def record_skip(switched_off: bool, title: str):
            return skip(
                metrics_uri=tuning_metrics_uri,
                au_pr=au_pr,
                threshold=aupr_threshold,
                switched_off=switched_off,
            ).set_display_name(title)

        with dsl.If(tuning == True, name=TUNING_ON_NAME):  # noqa: E712 (a KFP condition)
            with dsl.If(au_pr >= aupr_threshold, name=GATE_NAME):
                tuner = spark_step(p, TUNING).set_display_name("Tune hyperparameters")
                tuned = (
                    evaluate(metrics_uri=tuning_metrics_uri)
                    .set_display_name("Evaluate tuned model")
                    .after(tuner)
                )
                tasks += [tuner, tuned]
            with dsl.Else(name=SKIP_NAME):
                tasks.append(record_skip(False, "Record tuning skipped below the threshold"))
        with dsl.Else(name=TUNING_OFF_NAME):
            tasks.append(record_skip(True, "Record tuning switched off"))
        for task in tasks:
            task.set_caching_options(False)

    return customer_churn_training
