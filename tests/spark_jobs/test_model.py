"""The unfitted ML pipeline, the split, the grid and the sub-forest trick."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.ml import PipelineModel
from pyspark.ml.classification import RandomForestClassificationModel, RandomForestClassifier
from pyspark.ml.feature import OneHotEncoder, StringIndexer, VectorAssembler
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from churn_ml import model
from churn_ml.frames import local_frame
from churn_ml.model import ForestParams
from churn_ml.schema import CATEGORICAL_FEATURES, NUMERIC_FEATURES


@pytest.mark.usefixtures("spark")  # ML builders create JVM objects
def test_feature_stages():
    indexer, encoder, assembler = model.feature_stages()
    assert isinstance(indexer, StringIndexer)
    assert isinstance(encoder, OneHotEncoder)
    assert isinstance(assembler, VectorAssembler)

    assert len(CATEGORICAL_FEATURES) == 16
    assert indexer.getInputCols() == list(CATEGORICAL_FEATURES)
    assert indexer.getOutputCols() == [f"{c}_index" for c in CATEGORICAL_FEATURES]
    assert indexer.getHandleInvalid() == "keep"  # unseen categories at scoring time
    assert encoder.getInputCols() == indexer.getOutputCols()
    assert encoder.getHandleInvalid() == "keep"
    vectors = [f"{c}_vec" for c in CATEGORICAL_FEATURES]
    assert encoder.getOutputCols() == vectors
    assert assembler.getInputCols() == [*vectors, "monthly_charges", "total_charges"]
    assert set(NUMERIC_FEATURES) <= set(assembler.getInputCols())
    assert assembler.getOutputCol() == model.FEATURES


@pytest.mark.usefixtures("spark")  # ML builders create JVM objects
def test_training_pipeline_ends_with_the_configured_forest():
    stages = model.training_pipeline(ForestParams(7, 4, 20), seed=5).getStages()
    assert [type(s) for s in stages] == [
        StringIndexer,
        OneHotEncoder,
        VectorAssembler,
        RandomForestClassifier,
    ]
    rf = stages[-1]
    assert (rf.getNumTrees(), rf.getMaxDepth(), rf.getMaxBins(), rf.getSeed()) == (7, 4, 20, 5)
    assert (rf.getFeaturesCol(), rf.getLabelCol()) == ("features", "label")


def test_forest_params_defaults_and_dict():
    assert ForestParams().as_dict() == {"num_trees": 30, "max_depth": 10, "max_bins": 32}


@pytest.mark.usefixtures("spark")  # ML builders create JVM objects
def test_param_grid():
    rf = model.forest(ForestParams())
    grid = model.param_grid(rf, depths=[3, 5], bins=[16, 32, 64], trees=[5, 10])
    assert len(grid) == 2 * 3 * 2
    points = {(g[rf.maxDepth], g[rf.maxBins], g[rf.numTrees]) for g in grid}
    assert points == {(d, b, t) for d in (3, 5) for b in (16, 32, 64) for t in (5, 10)}


def test_with_label(spark):
    df = local_frame(spark, [("a", "yes"), ("b", "no")], "customer_id string, churn string")
    expected = local_frame(
        spark,
        [("a", "yes", 1.0), ("b", "no", 0.0)],
        "customer_id string, churn string, label double",
    )
    assertDataFrameEqual(model.with_label(df), expected)


@pytest.fixture(scope="module")
def customers(spark):
    return spark.range(2000).select(F.format_string("%04d-CUST", "id").alias("customer_id"))


def test_split_is_independent_of_partitioning(customers):
    train_a, test_a = model.split(customers.repartition(7), seed=42)
    train_b, test_b = model.split(customers.repartition(1), seed=42)
    assertDataFrameEqual(test_a, test_b)
    assertDataFrameEqual(train_a, train_b)


def test_split_is_a_seeded_partition_of_the_rows(customers):
    train, test = model.split(customers, seed=42)
    train_ids = {r.customer_id for r in train.collect()}
    test_ids = {r.customer_id for r in test.collect()}
    assert not train_ids & test_ids
    assert len(train_ids) + len(test_ids) == 2000
    assert 0.17 < len(test_ids) / 2000 < 0.23
    other_seed = {r.customer_id for r in model.split(customers, seed=43)[1].collect()}
    assert other_seed != test_ids
    half = {r.customer_id for r in model.split(customers, seed=42, test_fraction=0.5)[1].collect()}
    assert test_ids < half  # a larger test fraction keeps the smaller test set


def test_canonical_order(customers):
    ordered = model.canonical_order(customers.repartition(5), partitions=3)
    assert ordered.rdd.getNumPartitions() == 3
    for part in ordered.rdd.glom().collect():
        ids = [r.customer_id for r in part]
        assert ids == sorted(ids)


def test_feature_names(generated_rows, feature_model):
    names = model.feature_names(feature_model.transform(generated_rows.limit(5)))
    assert len(names) == len(set(names))
    assert names[-2:] == ["monthly_charges", "total_charges"]
    assert "contract_vec_Month-to-month" in names
    assert "internet_service_vec_Fiber optic" in names
    # 'No internet service' was recoded to 'No' before indexing
    assert not [n for n in names if n.endswith("No internet service")]
    size = feature_model.transform(generated_rows.limit(1)).first()["features"].size
    assert len(names) == size


@pytest.fixture(scope="module")
def fitted_forest(generated_vectors) -> RandomForestClassificationModel:
    return model.fit(
        model.forest(ForestParams(num_trees=6, max_depth=4, max_bins=16), seed=3),
        generated_vectors,
    )


@pytest.fixture(scope="module")
def sample_features(generated_vectors) -> list:
    return [r.features for r in generated_vectors.limit(25).collect()]


def test_sub_forest_has_the_first_k_trees(fitted_forest):
    sub = model.sub_forest(fitted_forest, 4)
    assert isinstance(sub, RandomForestClassificationModel)
    assert len(sub.trees) == 4
    assert sub.getNumTrees == 4
    assert (sub.numFeatures, sub.numClasses) == (fitted_forest.numFeatures, 2)
    originals = [t.toDebugString for t in fitted_forest.trees[:4]]
    assert [t.toDebugString for t in sub.trees] == originals


def test_sub_forest_averages_the_probabilities_of_its_trees(fitted_forest, sample_features):
    sub = model.sub_forest(fitted_forest, 3)
    for features in sample_features:
        mean = np.mean([t.predictProbability(features).toArray() for t in sub.trees], axis=0)
        assert sub.predictProbability(features).toArray() == pytest.approx(mean, abs=1e-12)


def test_sub_forest_of_all_trees_predicts_like_the_forest(fitted_forest, generated_vectors):
    whole = model.sub_forest(fitted_forest, 6)

    def scored(forest):
        return model.churn_probability(forest.transform(generated_vectors)).select(
            "customer_id", "prediction", model.CHURN_PROBABILITY
        )

    assertDataFrameEqual(scored(whole), scored(fitted_forest), rtol=0, atol=1e-12)


def test_sub_forest_can_be_saved_and_loaded(fitted_forest, tmp_path, sample_features):
    sub = model.sub_forest(fitted_forest, 2)
    sub.write().save(str(tmp_path / "sub"))
    loaded = RandomForestClassificationModel.load(str(tmp_path / "sub"))
    assert len(loaded.trees) == loaded.getNumTrees == 2
    features = sample_features[0]
    assert loaded.predictProbability(features) == sub.predictProbability(features)


@pytest.mark.parametrize("k", [0, 7])
def test_sub_forest_rejects_sizes_outside_the_forest(fitted_forest, k):
    with pytest.raises(ValueError, match="6-tree forest"):
        model.sub_forest(fitted_forest, k)


def test_churn_probability_is_the_probability_of_yes(fitted_forest, sample_features, spark):
    predictions = fitted_forest.transform(
        spark.createDataFrame([(f,) for f in sample_features[:5]], ["features"])
    )
    rows = model.churn_probability(predictions).collect()
    assert [r.churn_probability for r in rows] == [r.probability[1] for r in rows]
    assert all(0.0 <= r.churn_probability <= 1.0 for r in rows)


def test_feature_importances_are_named_and_sorted(generated_rows, feature_model, fitted_forest):
    fitted = PipelineModel(stages=[*feature_model.stages, fitted_forest])
    transformed = fitted.transform(generated_rows.limit(10))
    pairs = model.feature_importances(fitted, transformed)
    names = model.feature_names(transformed)
    assert sorted(name for name, _ in pairs) == sorted(names)
    weights = [w for _, w in pairs]
    assert weights == sorted(weights, reverse=True)
    assert weights == pytest.approx(sorted(fitted_forest.featureImportances.toArray())[::-1])
    assert sum(weights) == pytest.approx(1.0)
    top = {name for name, _ in pairs[:5]}
    assert top & {"total_charges", "monthly_charges", "contract_vec_Month-to-month"}
