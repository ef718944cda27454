"""URIs, tables and text files with write-then-commit (local filesystem backend)."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from pyspark.testing import assertDataFrameEqual

from churn_ml import storage
from churn_ml.frames import local_frame
from churn_ml.storage import BigQueryTable


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("gs://bucket/data/", "gs://bucket/data"),
        ("gs://bucket/data/train.csv", "gs://bucket/data/train.csv"),
        ("file:///tmp/x/", "file:///tmp/x"),
        ("hdfs://nn/warehouse", "hdfs://nn/warehouse"),
        ("bq://my-project.ds.table", "bq://my-project.ds.table"),
        ("/abs/path/train.csv", "file:///abs/path/train.csv"),
    ],
)
def test_normalize(uri, expected):
    assert storage.normalize(uri) == expected


def test_normalize_makes_relative_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert storage.normalize("data/train.csv") == f"file://{tmp_path}/data/train.csv"


@pytest.mark.parametrize("uri", ["", "s3://bucket/key", "http://example.com/x.csv"])
def test_normalize_rejects_unsupported_uris(uri):
    with pytest.raises(ValueError, match="URI"):
        storage.normalize(uri)


def test_join():
    assert storage.join("gs://b/root/", "/warehouse/", "t") == "gs://b/root/warehouse/t"
    assert storage.join("file:///x", "a=1/b=2") == "file:///x/a=1/b=2"
    assert storage.join("base") == "base"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "bq://my-project.customer_churn_ds.training_data",
            BigQueryTable("my-project", "customer_churn_ds", "training_data"),
        ),
        ("bq://proj-123456.ds_1.tbl-2", BigQueryTable("proj-123456", "ds_1", "tbl-2")),
        ("gs://bucket/warehouse/training_data", None),
        ("/tmp/warehouse/training_data", None),
    ],
)
def test_bigquery_table(uri, expected):
    assert storage.bigquery_table(uri) == expected


def test_bigquery_table_name():
    table = storage.bigquery_table("bq://my-project.customer_churn_ds.training_data")
    assert table.name == "my-project.customer_churn_ds.training_data"


@pytest.mark.parametrize(
    "uri",
    [
        "bq://my-project.customer_churn_ds",  # no table
        "bq://my-project",
        "bq://proj.ds.table",  # project ids have 6 to 30 characters
        "bq://My-Project.ds.table",  # lower case only
        "bq://1project.ds.table",  # starts with a letter
        "bq://my-project.ds.table.extra",
        "bq://my-project.data set.table",
        "bq://",
        "bq://my-project.ds.table\n",
    ],
)
def test_bigquery_table_rejects_bad_uris(uri):
    with pytest.raises(ValueError, match="bad BigQuery URI"):
        storage.bigquery_table(uri)


def test_partition_path():
    assert storage.partition_path({"operation": "training", "pipeline_id": "p1"}) == (
        "operation=training/pipeline_id=p1"
    )


def test_staging_uri_is_a_hidden_sibling():
    final = "file:///w/training_data/pipeline_id=p1"
    assert storage.staging_uri(final) == "file:///w/training_data/_staging/pipeline_id=p1"
    assert storage.staging_uri(final, "abcde-2").endswith("/_staging/pipeline_id=p1.abcde-2")
    assert storage.staging_uri("gs://b/m/model/") == "gs://b/m/_staging/model"


def _rows(spark, pipeline_id: str, n: int, start: int = 0, day=dt.date(2026, 11, 29)):
    return local_frame(
        spark,
        [(f"c{i}", float(i), pipeline_id, day) for i in range(start, start + n)],
        "customer_id string, score double, pipeline_id string, pipeline_execution_dt date",
    )


def test_write_table_twice_with_the_same_partition_leaves_one_copy(spark, tmp_path):
    table = str(tmp_path / "warehouse" / "batch_predictions")
    storage.write_table(_rows(spark, "20261129", 5), table, {"pipeline_id": "20261129"})
    second = _rows(spark, "20261129", 3, start=100)
    storage.write_table(second, table, {"pipeline_id": "20261129"})

    got = storage.read_table(spark, table, {"pipeline_id": "20261129"})
    assertDataFrameEqual(got.select(*second.columns), second)
    assert storage.read_table(spark, table).count() == 3
    partitions = sorted(p.name for p in (tmp_path / "warehouse" / "batch_predictions").iterdir())
    assert partitions == ["pipeline_id=20261129"]  # no empty _staging left behind


def test_a_run_reused_with_another_day_replaces_its_rows(spark, tmp_path):
    """As the BigQuery DELETE by run keys does (test_storage_bigquery)."""
    table = str(tmp_path / "batch_predictions")
    storage.write_table(_rows(spark, "p1", 4), table, {"pipeline_id": "p1"})
    storage.write_table(
        _rows(spark, "p1", 2, day=dt.date(2026, 11, 30)), table, {"pipeline_id": "p1"}
    )
    days = storage.read_table(spark, table).groupBy("pipeline_execution_dt").count().collect()
    assert [(r.pipeline_execution_dt, r["count"]) for r in days] == [(dt.date(2026, 11, 30), 2)]


def test_staged_rows_stay_unseen_until_committed_and_discard_leaves_nothing(spark, tmp_path):
    table = str(tmp_path / "batch_rejects")
    run = {"pipeline_id": "20261129"}
    first, second = _rows(spark, "20261129", 4), _rows(spark, "20261129", 2, start=50)
    storage.write_table(first, table, run)

    staged = storage.stage_table(second, table, run)
    assertDataFrameEqual(storage.read_table(spark, table, run).select(*first.columns), first)
    staged.commit()
    assertDataFrameEqual(storage.read_table(spark, table, run).select(*second.columns), second)

    storage.stage_table(first, table, run).discard()
    assertDataFrameEqual(storage.read_table(spark, table, run).select(*second.columns), second)
    assert not (tmp_path / "batch_rejects" / "_staging").exists()


def test_write_table_keeps_other_partitions_and_the_key_as_a_string(spark, tmp_path):
    table = str(tmp_path / "training_data")
    storage.write_table(_rows(spark, "20261129", 4), table, {"pipeline_id": "20261129"})
    storage.write_table(_rows(spark, "20261130", 2), table, {"pipeline_id": "20261130"})
    whole = storage.read_table(spark, table)
    assert dict(whole.dtypes)["pipeline_id"] == "string"  # not inferred as a number
    counts = {r.pipeline_id: r["count"] for r in whole.groupBy("pipeline_id").count().collect()}
    assert counts == {"20261129": 4, "20261130": 2}
    one = storage.read_table(spark, table, {"pipeline_id": "20261130"})
    assert {r.pipeline_id for r in one.collect()} == {"20261130"}


def test_write_table_with_two_partition_keys(spark, tmp_path):
    table = str(tmp_path / "model_metrics")
    df = local_frame(
        spark,
        [("au_pr", 0.6, "training", "p1")],
        "metric_name string, metric_value double, operation string, pipeline_id string",
    )
    storage.write_table(df, table, {"operation": "training", "pipeline_id": "p1"})
    assert (tmp_path / "model_metrics" / "operation=training" / "pipeline_id=p1").is_dir()
    got = storage.read_table(spark, table, {"operation": "training", "pipeline_id": "p1"})
    assertDataFrameEqual(got.select(*df.columns), df)


def test_read_table_of_a_missing_table(spark, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        storage.read_table(spark, str(tmp_path / "nothing"))


def test_staging_folders_are_invisible_to_spark_read(spark, tmp_path):
    table = tmp_path / "batch_predictions"
    storage.write_table(_rows(spark, "p1", 2), str(table), {"pipeline_id": "p1"})
    # A run that died half-way leaves its staged partition behind ...
    _rows(spark, "p2", 7).drop("pipeline_id").write.parquet(
        str(table / "_staging" / "pipeline_id=p2")
    )
    # ... which neither a reader of the table nor of the partition's parent sees.
    assert storage.read_table(spark, str(table)).count() == 2
    assert spark.read.parquet(str(table)).count() == 2
    assert {r.pipeline_id for r in spark.read.parquet(str(table)).collect()} == {"p1"}


def test_write_text_and_read_text_round_trip(spark, tmp_path):
    uri = str(tmp_path / "metrics" / "p1" / "metrics.json")
    text = '{\n  "au_pr": 0.61,\n  "note": "ünïcode"\n}\n'
    storage.write_text(spark, uri, text)
    assert storage.read_text(spark, uri) == text
    assert (tmp_path / "metrics" / "p1" / "metrics.json").read_text(encoding="utf-8") == text
    storage.write_text(spark, "file://" + uri, "replaced")
    assert storage.read_text(spark, uri) == "replaced"
    leftovers = [p.name for p in (tmp_path / "metrics" / "p1").rglob("*") if p.is_file()]
    assert [n for n in leftovers if not n.endswith(".crc")] == ["metrics.json"]


def test_exists_delete_and_commit(spark, tmp_path):
    staged = tmp_path / "_staging" / "model"
    staged.mkdir(parents=True)
    (staged / "new").write_text("new")
    final = tmp_path / "model"
    final.mkdir()
    (final / "old").write_text("old")
    storage.commit(spark, f"file://{staged}", f"file://{final}")
    assert sorted(os.listdir(final)) == ["new"]
    assert not staged.exists()
    assert storage.exists(spark, f"file://{final}")
    storage.delete(spark, f"file://{final}")
    assert not storage.exists(spark, f"file://{final}")


# --- One write for two tables -----------------------------------------------------------------

RUN = {"pipeline_id": "20261129"}
SIDE_COLUMNS = ("customer_id", "reason", "pipeline_id", "pipeline_execution_dt")


def _routed(spark, rejected: set[int], n: int = 6, score: float = 0.0):
    """Rows c0..c<n-1>; those in ``rejected`` carry a reason."""
    return local_frame(
        spark,
        [
            (f"c{i}", float(i) + score, f"bad {i % 2}" if i in rejected else None, "20261129",
             dt.date(2026, 11, 29))
            for i in range(n)
        ],
        "customer_id string, score double, reason string, pipeline_id string, "
        "pipeline_execution_dt date",
    )  # fmt: skip


def _split(spark, tmp_path, df):
    main, side = str(tmp_path / "predictions"), str(tmp_path / "rejects")
    split = storage.stage_split(df, "reason", main, side, SIDE_COLUMNS, RUN)
    return split, main, side


def _files(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_one_write_stages_two_tables_that_appear_together(spark, tmp_path):
    split, main, side = _split(spark, tmp_path, _routed(spark, {1, 4}))
    assert not (tmp_path / "predictions" / "pipeline_id=20261129").exists()
    assert sorted(r.customer_id for r in split.side_rows().collect()) == ["c1", "c4"]
    tables = split.tables()
    assert not (tmp_path / "rejects" / "pipeline_id=20261129").exists()  # staged, not visible
    storage.commit_all(tables)

    predictions = storage.read_table(spark, main, RUN)
    assert "reason" not in predictions.columns  # the route is no column of the main table
    assert sorted(r.customer_id for r in predictions.collect()) == ["c0", "c2", "c3", "c5"]
    rejects = storage.read_table(spark, side, RUN)
    assert sorted(rejects.columns) == sorted(SIDE_COLUMNS)
    assert {(r.customer_id, r.reason) for r in rejects.collect()} == {
        ("c1", "bad 1"),
        ("c4", "bad 0"),
    }
    for table in ("predictions", "rejects"):
        assert not (tmp_path / table / "_staging").exists()


def test_a_rerun_replaces_both_partitions(spark, tmp_path):
    split, main, side = _split(spark, tmp_path, _routed(spark, {1, 4}))
    storage.commit_all(split.tables())
    again, _, _ = _split(spark, tmp_path, _routed(spark, {2}, n=3, score=0.5))
    storage.commit_all(again.tables())
    assert sorted(r.score for r in storage.read_table(spark, main).collect()) == [0.5, 1.5]
    assert [r.customer_id for r in storage.read_table(spark, side).collect()] == ["c2"]


@pytest.mark.parametrize("readied", [False, True])
def test_a_discarded_split_leaves_nothing_and_changes_nothing(spark, tmp_path, readied):
    first, _, _ = _split(spark, tmp_path, _routed(spark, {1}))
    storage.commit_all(first.tables())
    before = {t: _files(tmp_path / t) for t in ("predictions", "rejects")}
    split, _, _ = _split(spark, tmp_path, _routed(spark, {0, 2, 3}, n=9))
    tables = split.tables() if readied else []
    split.discard()
    for table in tables:
        table.discard()
    assert {t: _files(tmp_path / t) for t in ("predictions", "rejects")} == before


def test_every_row_routed_to_the_side_still_replaces_the_main_partition(spark, tmp_path):
    first, main, side = _split(spark, tmp_path, _routed(spark, set()))
    storage.commit_all(first.tables())
    split, _, _ = _split(spark, tmp_path, _routed(spark, {0, 1}, n=2))
    storage.commit_all(split.tables())
    predictions = storage.read_table(spark, main, RUN)
    assert predictions.count() == 0
    assert sorted(predictions.columns) == sorted(
        ["customer_id", "score", "pipeline_id", "pipeline_execution_dt"]
    )
    assert storage.read_table(spark, side, RUN).count() == 2


def test_write_bytes_round_trip(spark, tmp_path):
    uri = str(tmp_path / "report" / "plot.png")
    storage.write_bytes(spark, uri, b"\x89PNG\r\n\x1a\n\x00\xff")
    assert (tmp_path / "report" / "plot.png").read_bytes() == b"\x89PNG\r\n\x1a\n\x00\xff"
    assert not (tmp_path / "report" / "_staging").exists()
