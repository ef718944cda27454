"""The fitted churn PipelineModel as plain arrays, applied to whole Arrow batches at once.

``PipelineModel.transform`` runs a JVM function per row and stage: 16 string lookups, 16
one-hot vectors, their assembly, then 30 trees walked one row at a time. That costs about
five times reading, cleaning and writing the rows. Compiled, the string indexing is one SQL
``CASE`` per column (generated code), and the forest walks every row of a batch one level at
a time with numpy. Predictions and probabilities equal ``transform``'s to the last bit: the
same comparisons, and the trees' votes summed in the same order (tests check).

Only the shape ``churn_ml.model`` fits is compiled (keep-invalid indexer and encoder, the
assembler, a two-class forest); ``load_compiled`` reads it from the saved model's files and
returns None for anything else.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
from pyspark import cloudpickle
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from churn_ml import raw_csv, storage
from churn_ml.model import CHURN_PROBABILITY, PREDICTION

log = logging.getLogger(__name__)
# The scoring function reaches Python workers with this module's code inside, so they need
# numpy, pandas and pyarrow but not the churn_ml package on their path.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

_SIGNED = "_signed_probability"
_SHAPE = (
    "StringIndexerModel",
    "OneHotEncoderModel",
    "VectorAssembler",
    "RandomForestClassificationModel",
)


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


# Only the fields read, so Spark reads the saved Parquet without first inferring its schema.
_NODES_SCHEMA = (
    "treeID int, nodeData struct<id: int, leftChild: int, rightChild: int, impurityStats: "
    "array<double>, split: struct<featureIndex: int, leftCategoriesOrThreshold: array<double>, "
    "numCategories: int>>"
)


def read_nodes(spark: SparkSession, stage_uri: str) -> pd.DataFrame:
    """The node table a saved RandomForestClassificationModel keeps under ``data/``."""
    rows = (
        spark.read.schema(_NODES_SCHEMA)
        .parquet(storage.join(stage_uri, "data"))
        .select(
            F.col("treeID").alias("tree"),
            F.col("nodeData.id").alias("id"),
            F.col("nodeData.leftChild").alias("left"),
            F.col("nodeData.rightChild").alias("right"),
            F.col("nodeData.split.featureIndex").alias("feature"),
            F.col("nodeData.split.numCategories").alias("num_categories"),
            F.col("nodeData.split.leftCategoriesOrThreshold").alias("split_values"),
            F.col("nodeData.impurityStats").alias("stats"),
        )
    )
    return pd.DataFrame([r.asDict() for r in rows.collect()])


class BatchObserver(Protocol):
    """Sees every batch the compiled model scores, in the Python worker (pickled with it)."""

    def inputs(self) -> list[Column]:
        """Columns the observer reads besides the model's, one value per row (on the driver)."""

    def observe(
        self, codes: np.ndarray, numerics: np.ndarray, probability: np.ndarray, extra: list
    ) -> None:
        """One batch: its category codes, numeric features, churn probabilities and the
        ``inputs()`` values."""


_WORD_BITS = 63  # of a signed long


@dataclass(frozen=True)
class CompiledModel:
    categorical: tuple[tuple[str, tuple[str, ...]], ...]  # column and its labels by index
    numeric: tuple[str, ...]
    forest: Forest

    def code_places(self) -> tuple[tuple[int, int], ...]:
        """(word, shift) of each column's code in the longs ``code_words`` packs them into."""
        places, word, shift = [], 0, 0
        for _, labels in self.categorical:
            bits = len(labels).bit_length()  # codes run from 0 to len(labels), the unseen one
            if shift + bits > _WORD_BITS:
                word, shift = word + 1, 0
            places.append((word, shift))
            shift += bits
        return tuple(places)

    def code_words(self) -> list[Column]:
        """StringIndexer's codes (handleInvalid=keep: a label's position, else the label count)
        of every column, packed into as few longs as hold them: one Arrow column, not 16, goes
        to Python."""
        words: dict[int, Column] = {}
        for (name, labels), (word, shift) in zip(self.categorical, self.code_places(), strict=True):
            value = F.col(name).cast("string")
            code = F.when(value == labels[0], 0)
            for i, label in enumerate(labels[1:], start=1):
                code = code.when(value == label, i << shift)
            code = code.otherwise(len(labels) << shift).cast("long")
            words[word] = words[word] + code if word in words else code
        return list(words.values())

    def codes(self, words: list[np.ndarray]) -> np.ndarray:
        """The (rows, columns) codes of a batch of ``code_words`` values."""
        return np.column_stack([
            (words[word] >> shift) & ((1 << len(labels).bit_length()) - 1)
            for (_, labels), (word, shift) in zip(self.categorical, self.code_places(), strict=True)
        ])  # fmt: skip

    def feature_matrix(self, codes: np.ndarray, numerics: np.ndarray) -> np.ndarray:
        """The assembled vector, dense: one slot per label plus the unknown slot, then numerics."""
        slots = np.array([len(labels) + 1 for _, labels in self.categorical])
        offsets = np.concatenate([[0], np.cumsum(slots)[:-1]])
        matrix = np.zeros((len(codes), slots.sum() + numerics.shape[1]))
        matrix[np.arange(len(codes))[:, None], offsets + codes] = 1.0
        matrix[:, slots.sum() :] = numerics
        return matrix

    def transform(self, df: DataFrame, observer: BatchObserver | None = None) -> DataFrame:
        """``df`` plus ``prediction`` (int) and ``churn_probability``.

        One double per row comes back from Python: the probability, negated when the prediction
        is 0. Both decode exactly: a prediction of 1 means more votes for churn, so a
        probability above 0; ``abs`` restores the probability bit for bit.
        """
        model, words = self, self.code_words()
        n_words, n_model = len(words), len(words) + len(self.numeric)
        extra = observer.inputs() if observer else []

        @F.pandas_udf("double")
        def predict(batches: Iterator[tuple[pd.Series, ...]]) -> Iterator[pd.Series]:
            for columns in batches:
                codes = model.codes([c.to_numpy() for c in columns[:n_words]])
                numerics = np.column_stack(
                    [c.to_numpy(np.float64) for c in columns[n_words:n_model]]
                )
                label, probability = model.forest.predict(model.feature_matrix(codes, numerics))
                if observer is not None:
                    values = [c.to_numpy() for c in columns[n_model:]]
                    observer.observe(codes, numerics, probability, values)
                yield pd.Series(np.where(label == 1, probability, -probability))

        signed = predict(*words, *(F.col(c) for c in self.numeric), *extra)
        return df.withColumn(_SIGNED, signed).select(
            *df.columns,
            (F.col(_SIGNED) > 0).cast("int").alias(PREDICTION),
            F.abs(_SIGNED).alias(CHURN_PROBABILITY),
        )


@dataclass(frozen=True)
class Stage:
    """A saved pipeline stage: its folder and its metadata document."""

    uri: str
    metadata: dict

    @property
    def kind(self) -> str:
        return self.metadata["class"].rsplit(".", 1)[-1]

    def param(self, name: str):
        """The value the stage was saved with: set explicitly, else Spark's default."""
        explicit = self.metadata.get("paramMap", {})
        return explicit[name] if name in explicit else self.metadata["defaultParamMap"].get(name)


def _metadata(spark: SparkSession, folder: str) -> dict:
    text = raw_csv.first_line(spark, storage.join(folder, "metadata"))  # one JSON line
    return json.loads(text or "{}")


def read_stages(spark: SparkSession, model_uri: str) -> list[Stage]:
    """The stages of a saved PipelineModel, read on the driver (no Spark job).

    ``PipelineModel.load`` runs 19 Spark jobs for the churn model (each stage's metadata and
    data, the forest's trees rebuilt as JVM objects): 3-8 s of a scoring job's start here.
    """
    pipeline = _metadata(spark, model_uri)
    uids = pipeline.get("paramMap", {}).get("stageUids", [])
    width = len(str(len(uids)))
    folders = [storage.join(model_uri, "stages", f"{i:0{width}d}_{u}") for i, u in enumerate(uids)]
    return [Stage(folder, _metadata(spark, folder)) for folder in folders]


def load_compiled(spark: SparkSession, model_uri: str) -> CompiledModel | None:
    """The compiled form of a saved churn model, from its files, or None (reason logged)."""
    stages = read_stages(spark, model_uri)
    why = _unsupported(stages)
    if why is None:
        labels = spark.read.schema("labelsArray array<array<string>>").parquet(
            storage.join(stages[0].uri, "data")
        )
        labels = tuple(tuple(ls) for ls in labels.first()["labelsArray"])
        why = _unsupported_vector(stages, labels)
    if why is None:
        forest = forest_from_nodes(read_nodes(spark, stages[3].uri), stages[3].param("maxDepth"))
        if forest is None:
            why = "a tree split other than a threshold or a one-hot slot test"
    if why is not None:
        log.info("scoring with PipelineModel.transform: the model has %s", why)
        return None
    categorical = tuple(zip(stages[0].param("inputCols"), labels, strict=True))
    numeric = tuple(stages[2].param("inputCols")[len(labels) :])
    return CompiledModel(categorical, numeric, forest)


def _unsupported(stages: list[Stage]) -> str | None:
    """What in the stages' shape keeps the model from being compiled, or None."""
    if tuple(s.kind for s in stages) != _SHAPE:
        return "stages " + ", ".join(s.kind for s in stages)
    indexer, encoder, assembler, forest = stages
    checks = {
        "an indexer that does not keep unseen labels": indexer.param("handleInvalid") != "keep",
        "an encoder that does not keep unseen labels": encoder.param("handleInvalid") != "keep"
        or not encoder.param("dropLast"),
        "stages wired differently": encoder.param("inputCols") != indexer.param("outputCols")
        or assembler.param("inputCols")[: len(encoder.param("outputCols"))]
        != encoder.param("outputCols"),
        "more than two classes or set thresholds": forest.metadata.get("numClasses") != 2
        or forest.param("thresholds") is not None,
    }
    return next((why for why, failed in checks.items() if failed), None)


def _unsupported_vector(stages: list[Stage], labels: tuple[tuple[str, ...], ...]) -> str | None:
    assembled = len(stages[2].param("inputCols"))
    width = sum(len(ls) + 1 for ls in labels) + assembled - len(labels)
    if stages[3].metadata.get("numFeatures") != width:
        return "a vector size that does not match"
    return None
