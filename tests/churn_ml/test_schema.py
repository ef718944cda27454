"""Column names shared by every job."""

from __future__ import annotations

from churn_ml import schema


def test_raw_columns_map_to_unique_snake_case_names():
    assert len(schema.RAW_TRAIN_COLUMNS) == 21
    assert schema.RAW_TRAIN_COLUMNS[-1] == schema.RAW_LABEL == "Churn"
    assert schema.RAW_TRAIN_COLUMNS[:-1] == schema.RAW_SCORE_COLUMNS
    clean = list(schema.RAW_TO_CLEAN.values())
    assert len(set(clean)) == len(clean)
    assert all(c == c.lower() and " " not in c for c in clean)


def test_features_are_clean_columns():
    clean = set(schema.RAW_TO_CLEAN.values())
    assert set(schema.CATEGORICAL_FEATURES) <= clean
    assert set(schema.NUMERIC_FEATURES) <= clean
    assert not set(schema.CATEGORICAL_FEATURES) & set(schema.NUMERIC_FEATURES)
    assert schema.LABEL not in schema.CATEGORICAL_FEATURES
    assert schema.LABEL_VALUES == ("no", "yes")  # index 1 is the positive class


def test_raw_schema_is_all_strings():
    struct = schema.raw_schema(["a", "b"])
    assert [(f.name, f.dataType.simpleString(), f.nullable) for f in struct.fields] == [
        ("a", "string", True),
        ("b", "string", True),
    ]
