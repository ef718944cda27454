"""The Spark ML model: feature stages, the random forest, the split and the tuning grid.

Builders return unfitted objects so tests can inspect them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyspark import SparkContext
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import RandomForestClassificationModel, RandomForestClassifier
from pyspark.ml.feature import OneHotEncoder, StringIndexer, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.ml.tuning import ParamGridBuilder
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from churn_core import defaults
from churn_ml.schema import CATEGORICAL_FEATURES, LABEL, NUMERIC_FEATURES

FEATURES = "features"
LABEL_INDEX = "label"
CHURN_PROBABILITY = "churn_probability"
PREDICTION = "prediction"
DEFAULT_SEED = defaults.SEED


@dataclass(frozen=True)
class ForestParams:
    num_trees: int = 30
    max_depth: int = 10
    max_bins: int = 32

    def as_dict(self) -> dict[str, int]:
        return {"num_trees": self.num_trees, "max_depth": self.max_depth, "max_bins": self.max_bins}


def with_label(df: DataFrame) -> DataFrame:
    """The numeric label: 1.0 for churn = yes, 0.0 for no (the order the metrics report)."""
    return df.withColumn(LABEL_INDEX, (F.col(LABEL) == "yes").cast("double"))


def feature_stages() -> list:
    """Index and one-hot encode the categoricals, then assemble them with the numerics."""
    indexed = [f"{c}_index" for c in CATEGORICAL_FEATURES]
    encoded = [f"{c}_vec" for c in CATEGORICAL_FEATURES]
    return [
        StringIndexer(
            inputCols=list(CATEGORICAL_FEATURES),
            outputCols=indexed,
            handleInvalid="keep",
            stringOrderType="frequencyDesc",
        ),
        OneHotEncoder(inputCols=indexed, outputCols=encoded, handleInvalid="keep"),
        VectorAssembler(inputCols=[*encoded, *NUMERIC_FEATURES], outputCol=FEATURES),
    ]


def forest(params: ForestParams, seed: int = DEFAULT_SEED) -> RandomForestClassifier:
    return RandomForestClassifier(
        featuresCol=FEATURES,
        labelCol=LABEL_INDEX,
        numTrees=params.num_trees,
        maxDepth=params.max_depth,
        maxBins=params.max_bins,
        seed=seed,
        # Deep trees on few rows: let each pass grow more nodes, so a fit needs fewer Spark jobs.
        maxMemoryInMB=1024,
        cacheNodeIds=True,
    )


def fit(estimator, df: DataFrame):
    """``estimator.fit(df)`` without the training summary that Spark attaches to the model.

    The summary holds the SparkSession. Once the session has used an ``Observation`` (Spark
    4.0), the session cannot be serialized, and every ``transform`` of such a model fails
    with ``NotSerializableException: ObservationManager``. ``copy()`` drops the summary.
    """
    return estimator.fit(df).copy()


def sub_forest(
    model: RandomForestClassificationModel, num_trees: int
) -> RandomForestClassificationModel:
    """The forest of the first ``num_trees`` trees: itself a random forest of that size.

    Each tree is grown on its own bootstrap sample, so a prefix of a forest is a valid smaller
    forest; tuning fits the largest and reads the smaller ones off it.
    """
    trees = model._java_obj.trees()
    if not 1 <= num_trees <= len(trees):
        raise ValueError(f"cannot take {num_trees} trees of a {len(trees)}-tree forest")
    sc = SparkContext._active_spark_context
    ml = sc._jvm.org.apache.spark.ml.classification
    prefix = sc._gateway.new_array(ml.DecisionTreeClassificationModel, num_trees)
    for i in range(num_trees):
        prefix[i] = trees[i]
    java_model = ml.RandomForestClassificationModel(
        f"{model.uid}_{num_trees}", prefix, model.numFeatures, model.numClasses
    )
    sub = RandomForestClassificationModel(java_model)
    # The Java constructor leaves numTrees at its default (20): getNumTrees and the saved
    # metadata would disagree with the trees, and loading the saved model would fail.
    sub._set(numTrees=num_trees)
    sub._transfer_params_to_java()
    return sub


def training_pipeline(params: ForestParams, seed: int = DEFAULT_SEED) -> Pipeline:
    return Pipeline(stages=[*feature_stages(), forest(params, seed)])


def param_grid(
    rf: RandomForestClassifier, depths: Sequence[int], bins: Sequence[int], trees: Sequence[int]
) -> list[dict]:
    return (
        ParamGridBuilder()
        .addGrid(rf.maxDepth, list(depths))
        .addGrid(rf.maxBins, list(bins))
        .addGrid(rf.numTrees, list(trees))
        .build()
    )


def split(df: DataFrame, seed: int, test_fraction: float = 0.2) -> tuple[DataFrame, DataFrame]:
    """A split decided per customer by a seeded hash: the same whatever the partitioning."""
    bucket = F.abs(F.xxhash64(F.col("customer_id"), F.lit(seed))) % 10_000
    is_test = bucket < round(test_fraction * 10_000)
    return df.where(~is_test), df.where(is_test)


def canonical_order(df: DataFrame, partitions: int) -> DataFrame:
    """Fixed partitions and row order, so the forest's per-partition sampling is reproducible."""
    return df.repartition(partitions, "customer_id").sortWithinPartitions("customer_id")


def churn_probability(predictions: DataFrame) -> DataFrame:
    return predictions.withColumn(CHURN_PROBABILITY, vector_to_array("probability")[1])


def feature_names(transformed: DataFrame) -> list[str]:
    """Names of the assembled vector's slots, from the ML attribute metadata."""
    attrs = transformed.schema[FEATURES].metadata["ml_attr"]["attrs"]
    slots = [a for group in attrs.values() for a in group]
    return [a["name"] for a in sorted(slots, key=lambda a: a["idx"])]


def feature_importances(model: PipelineModel, transformed: DataFrame) -> list[tuple[str, float]]:
    """(feature, importance) of the fitted forest, most important first."""
    weights = model.stages[-1].featureImportances.toArray()
    pairs = zip(feature_names(transformed), (float(w) for w in weights), strict=True)
    return sorted(pairs, key=lambda p: (-p[1], p[0]))
