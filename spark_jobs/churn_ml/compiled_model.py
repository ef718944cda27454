"""The fitted churn PipelineModel as plain arrays, applied to whole Arrow batches at once.

``PipelineModel.transform`` runs a JVM function per row and stage: 16 string lookups, 16
one-hot vectors, their assembly, then 30 trees walked one row at a time. That costs about
five times reading, cleaning and writing the rows. Compiled, the string indexing is one SQL
``CASE`` per column (generated code), and the forest walks every row of a batch one level at
a time with numpy. Predictions and probabilities equal ``transform``'s to the last bit: the
same comparisons, and the trees' votes summed in the same order (tests check).

Only the shape ``churn_ml.model`` fits is compiled (keep-invalid indexer and encoder, the
assembler, a two-class forest); ``compile_model`` returns None for anything else.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark import cloudpickle
from pyspark.ml import PipelineModel
from pyspark.ml.classification import RandomForestClassificationModel
from pyspark.ml.feature import OneHotEncoderModel, StringIndexerModel, VectorAssembler
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from churn_ml import storage
from churn_ml.model import CHURN_PROBABILITY, PREDICTION

log = logging.getLogger(__name__)
# The scoring function reaches Python workers with this module's code inside, so they need
# numpy, pandas and pyarrow but not the churn_ml package on their path.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

_SHAPE = (StringIndexerModel, OneHotEncoderModel, VectorAssembler, RandomForestClassificationModel)


@dataclass(frozen=True)
class Forest:
    """All trees' nodes in flat arrays; a leaf is its own child and never goes on."""

    feature: np.ndarray  # int32: the feature a split node tests (0 for a leaf)
    threshold: np.ndarray  # float64: go left when value <= threshold (+inf for a leaf)
    children: np.ndarray  # int32, two per node: [right, left], indexed by (value <= threshold)
    votes: np.ndarray  # float64 (nodes, 2): a leaf's class counts over their sum
    roots: np.ndarray  # int32: each tree's root, in the forest's order
    depth: int

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(prediction, probability of class 1) for each row of a dense feature matrix."""
        rows, width = features.shape
        flat = features.ravel()
        row_start = (np.arange(rows, dtype=np.int64) * width)[:, None]
        node = np.tile(self.roots, (rows, 1))
        for _ in range(self.depth):
            value = np.take(flat, row_start + np.take(self.feature, node))
            node = np.take(self.children, 2 * node + (value <= np.take(self.threshold, node)))
        # Spark adds each tree's normalised counts in tree order, then divides by their sum.
        votes = np.zeros((rows, 2))
        for tree in range(node.shape[1]):
            votes += self.votes[node[:, tree]]
        return (votes[:, 1] > votes[:, 0]).astype(np.int32), votes[:, 1] / votes.sum(axis=1)


def forest_from_nodes(nodes: pd.DataFrame, depth: int) -> Forest | None:
    """The Forest of a saved forest's node table (one row per node; see ``read_nodes``).

    None if a split is not one this module evaluates: a continuous threshold, or a binary
    categorical split (a one-hot slot) with one left category.
    """
    nodes = nodes.sort_values(["tree", "id"], ignore_index=True)
    sizes = nodes.groupby("tree", sort=True).size()
    first = np.concatenate([[0], np.cumsum(sizes.to_numpy())[:-1]])
    start = np.repeat(first, sizes.to_numpy())
    if not np.array_equal(start + nodes["id"].to_numpy(), np.arange(len(nodes))):
        return None  # node ids are not 0..n-1 within each tree
    own = np.arange(len(nodes))
    leaf = nodes["left"].to_numpy() < 0
    left = np.where(leaf, own, start + nodes["left"].to_numpy())
    right = np.where(leaf, own, start + nodes["right"].to_numpy())
    categories = nodes["num_categories"].to_numpy()
    split_values = nodes["split_values"].tolist()
    threshold = np.full(len(nodes), np.inf)
    for i in np.flatnonzero(~leaf):
        values = list(split_values[i])
        if categories[i] < 0 and len(values) == 1:
            threshold[i] = values[0]
        elif categories[i] == 2 and values in ([0.0], [1.0]):
            # A 0/1 slot: "value in {0}" is value <= 0.5; "value in {1}" swaps the children.
            threshold[i] = 0.5
            if values == [1.0]:
                left[i], right[i] = right[i], left[i]
        else:
            return None
    stats = np.stack(nodes["stats"].to_numpy()).astype(np.float64)
    if stats.shape[1] != 2:
        return None
    total = stats[:, 0] + stats[:, 1]
    votes = np.divide(stats, total[:, None], out=np.zeros_like(stats), where=total[:, None] > 0)
    children = np.empty(2 * len(nodes), np.int32)
    children[0::2], children[1::2] = right, left
    feature = np.where(leaf, 0, nodes["feature"].to_numpy()).astype(np.int32)
    return Forest(feature, threshold, children, votes, first.astype(np.int32), depth)


def read_nodes(spark: SparkSession, stage_uri: str) -> pd.DataFrame:
    """The node table a saved RandomForestClassificationModel keeps under ``data/``."""
    rows = spark.read.parquet(storage.join(stage_uri, "data")).select(
        F.col("treeID").alias("tree"),
        F.col("nodeData.id").alias("id"),
        F.col("nodeData.leftChild").alias("left"),
        F.col("nodeData.rightChild").alias("right"),
        F.col("nodeData.split.featureIndex").alias("feature"),
        F.col("nodeData.split.numCategories").alias("num_categories"),
        F.col("nodeData.split.leftCategoriesOrThreshold").alias("split_values"),
        F.col("nodeData.impurityStats").alias("stats"),
    )
    return pd.DataFrame([r.asDict() for r in rows.collect()])


@dataclass(frozen=True)
class CompiledModel:
    categorical: tuple[tuple[str, tuple[str, ...]], ...]  # column and its labels by index
    numeric: tuple[str, ...]
    forest: Forest

    def index_columns(self) -> list[Column]:
        """StringIndexer with handleInvalid=keep: a label's position, else the label count."""
        indexed = []
        for name, labels in self.categorical:
            value = F.col(name).cast("string")
            index = F.when(value == labels[0], 0)
            for i, label in enumerate(labels[1:], start=1):
                index = index.when(value == label, i)
            indexed.append(index.otherwise(len(labels)).cast("int"))
        return indexed

    def feature_matrix(self, codes: np.ndarray, numerics: np.ndarray) -> np.ndarray:
        """The assembled vector, dense: one slot per label plus the unknown slot, then numerics."""
        slots = np.array([len(labels) + 1 for _, labels in self.categorical])
        offsets = np.concatenate([[0], np.cumsum(slots)[:-1]])
        matrix = np.zeros((len(codes), slots.sum() + numerics.shape[1]))
        matrix[np.arange(len(codes))[:, None], offsets + codes] = 1.0
        matrix[:, slots.sum() :] = numerics
        return matrix

    def transform(self, df: DataFrame) -> DataFrame:
        """``df`` plus ``prediction`` (int) and ``churn_probability``."""
        model, n_codes = self, len(self.categorical)

        @F.pandas_udf(f"{PREDICTION} int, {CHURN_PROBABILITY} double")
        def predict(batches: Iterator[tuple[pd.Series, ...]]) -> Iterator[pd.DataFrame]:
            for columns in batches:
                codes = np.column_stack([c.to_numpy() for c in columns[:n_codes]])
                numerics = np.column_stack([c.to_numpy(np.float64) for c in columns[n_codes:]])
                label, probability = model.forest.predict(model.feature_matrix(codes, numerics))
                yield pd.DataFrame({PREDICTION: label, CHURN_PROBABILITY: probability})

        scored = predict(*self.index_columns(), *(F.col(c) for c in self.numeric))
        return df.withColumn("_scored", scored).select(
            *df.columns, f"_scored.{PREDICTION}", f"_scored.{CHURN_PROBABILITY}"
        )


def stage_uri(model_uri: str, model: PipelineModel, index: int) -> str:
    """Where PipelineModel.save put a stage: ``stages/<zero-padded index>_<uid>``."""
    width = len(str(len(model.stages)))
    return storage.join(model_uri, "stages", f"{index:0{width}d}_{model.stages[index].uid}")


def compile_model(
    spark: SparkSession, model: PipelineModel, model_uri: str
) -> CompiledModel | None:
    """The compiled form of a saved churn model, or None (with the reason logged)."""
    why = _unsupported(model)
    if why is None:
        indexer, _, assembler, forest_model = model.stages
        forest = forest_from_nodes(
            read_nodes(spark, stage_uri(model_uri, model, 3)), forest_model.getMaxDepth()
        )
        if forest is None:
            why = "a tree split other than a threshold or a one-hot slot test"
    if why is not None:
        log.info("scoring with PipelineModel.transform: the model has %s", why)
        return None
    labels = tuple(tuple(ls) for ls in indexer.labelsArray)
    numeric = tuple(assembler.getInputCols()[len(labels) :])
    return CompiledModel(tuple(zip(indexer.getInputCols(), labels, strict=True)), numeric, forest)


def _unsupported(model: PipelineModel) -> str | None:
    """What keeps the model from being compiled, or None."""
    if tuple(type(s) for s in model.stages) != _SHAPE:
        return "stages " + ", ".join(type(s).__name__ for s in model.stages)
    indexer, encoder, assembler, forest = model.stages
    labels = indexer.labelsArray
    checks = {
        "an indexer that does not keep unseen labels": indexer.getHandleInvalid() != "keep",
        "an encoder that does not keep unseen labels": encoder.getHandleInvalid() != "keep"
        or not encoder.getDropLast(),
        "stages wired differently": encoder.getInputCols() != indexer.getOutputCols()
        or assembler.getInputCols()[: len(labels)] != encoder.getOutputCols(),
        "a vector size that does not match": forest.numFeatures
        != sum(len(ls) + 1 for ls in labels) + len(assembler.getInputCols()) - len(labels),
        "more than two classes or set thresholds": forest.numClasses != 2
        or forest.isDefined(forest.thresholds),
    }
    return next((why for why, failed in checks.items() if failed), None)
