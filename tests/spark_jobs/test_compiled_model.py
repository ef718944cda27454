"""The compiled model against PipelineModel.transform, and what it refuses to compile."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import DecisionTreeClassifier
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from churn_ml import cleaning, raw_csv
from churn_ml.compiled_model import forest_from_nodes, load_compiled, read_stages
from churn_ml.frames import local_frame
from churn_ml.model import FEATURES, LABEL_INDEX, churn_probability, fit


def _node(tree, id, left, right, feature=-1, categories=-1, values=(), stats=(1.0, 1.0)):
    return {
        "tree": tree,
        "id": id,
        "left": left,
        "right": right,
        "feature": feature,
        "num_categories": categories,
        "split_values": list(values),
        "stats": list(stats),
    }


def test_forest_follows_thresholds_and_one_hot_slots():
    nodes = pd.DataFrame(
        [
            # tree 0: x1 <= 10 -> leaf (3 no, 1 yes), else leaf (0 no, 2 yes)
            _node(0, 0, 1, 2, feature=1, values=[10.0]),
            _node(0, 1, -1, -1, stats=(3.0, 1.0)),
            _node(0, 2, -1, -1, stats=(0.0, 2.0)),
            # tree 1: slot x0 in {1} -> leaf all yes, else leaf all no
            _node(1, 0, 1, 2, feature=0, categories=2, values=[1.0]),
            _node(1, 1, -1, -1, stats=(0.0, 5.0)),
            _node(1, 2, -1, -1, stats=(4.0, 0.0)),
        ]
    )
    forest = forest_from_nodes(nodes.sample(frac=1.0, random_state=1), depth=1)
    features = np.array([[0.0, 10.0], [1.0, 10.0], [0.0, 11.0], [1.0, np.nan]])
    prediction, probability = forest.predict(features)
    assert probability.tolist() == [0.125, 0.625, 0.5, 1.0]
    assert prediction.tolist() == [0, 1, 0, 1]  # a tie goes to class 0, as argmax does


def test_forest_refuses_multi_category_splits():
    nodes = pd.DataFrame(
        [
            _node(0, 0, 1, 2, feature=0, categories=3, values=[0.0, 2.0]),
            _node(0, 1, -1, -1),
            _node(0, 2, -1, -1),
        ]
    )
    assert forest_from_nodes(nodes, depth=1) is None


@pytest.mark.slow
def test_compiled_equals_transform_to_the_bit(spark, runs):
    """Every row of the scoring data plus unseen labels: same predictions and probabilities."""
    assert runs.trained
    uri = str(runs.train_model)
    model = PipelineModel.load(uri)
    compiled = load_compiled(spark, uri)
    assert compiled is not None
    customers = cleaning.clean(
        cleaning.parse(raw_csv.read(spark, str(runs.source.score_csv), with_label=False))
    )
    unseen = customers.limit(20).withColumns(
        {"contract": F.lit("Weekly"), "gender": F.lit("Other"), "senior_citizen": F.lit(7)}
    )
    rows = customers.union(unseen).cache()
    columns = ["customer_id", F.col("prediction").cast("int"), "churn_probability"]
    expected = churn_probability(model.transform(rows)).select(columns)
    assertDataFrameEqual(compiled.transform(rows).select(columns), expected, checkRowOrder=True)
    rows.unpersist()


def test_other_models_are_not_compiled_and_score_through_transform(spark, tmp_path):
    import score
    from pyspark.ml.feature import OneHotEncoder, StringIndexer, VectorAssembler

    rows = local_frame(
        spark,
        [(g, 50.0 + i, float(i % 2)) for i, g in enumerate(["a", "b"] * 5)],
        f"g string, x double, {LABEL_INDEX} double",
    )
    stages = [
        StringIndexer(inputCol="g", outputCol="g_i", handleInvalid="keep"),
        OneHotEncoder(inputCol="g_i", outputCol="g_v", handleInvalid="keep"),
        VectorAssembler(inputCols=["g_v", "x"], outputCol=FEATURES),
        # Not LogisticRegression: its copy() keeps the training summary, which Spark 4.0 cannot
        # serialize once the session has used an Observation (as the jobs do).
        DecisionTreeClassifier(featuresCol=FEATURES, labelCol=LABEL_INDEX, maxDepth=2),
    ]
    model = fit(Pipeline(stages=stages), rows)
    uri = str(tmp_path / "tree")
    model.save(uri)
    assert [s.kind for s in read_stages(spark, uri)][-1] == "DecisionTreeClassificationModel"
    assert load_compiled(spark, uri) is None
    expected = churn_probability(model.transform(rows)).select("prediction", "churn_probability")
    scored = score.load_scorer(spark, uri)[0](rows).select("prediction", "churn_probability")
    assertDataFrameEqual(scored, expected)
