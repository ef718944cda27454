"""Shared fixtures: one local SparkSession, the reference and generated data, and job runs.

The jobs' ``build_session()`` returns the active session, so calling ``preprocess.main([...])``
and the other entrypoints in-process reuses the session started here.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession

from churn_core.spark_conf import COMMON
from churn_ml import sample_data

REPO = Path(__file__).resolve().parents[1]

# Airflow reads its configuration when first imported: a throw-away home with SQLite and this
# repo's DAGs and plugins, set before any test module imports airflow.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="churn-airflow-")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(REPO / "plugins"))
SHARED = REPO.parent / "shared" / "data"
REFERENCE_TRAIN = SHARED / "customer_churn_train_data.csv"
REFERENCE_SCORE = SHARED / "customer_churn_score_data.csv"
SPARK_JOBS = REPO / "spark_jobs"
# The suite's spark-submits (the local backend's jobs, in the pipeline and Airflow tests) are
# short JVMs on small inputs: there C1 alone compiles enough, for about half the CPU
# (docs/performance.md). The in-process session below lives long and keeps C2, held back.
SHORT_JVM_OPTIONS = "-XX:TieredStopAtLevel=1"
os.environ.setdefault("SPARK_SUBMIT_OPTS", SHORT_JVM_OPTIONS)
# The in-process session runs many small queries in one JVM. The serial GC spends less CPU than
# G1's threads (make test-fast: 0.94x the CPU). At Java's thresholds C2 also compiles planner
# code that only some queries touch; at ten times them it compiles what stays hot: the fast
# Spark tests took 0.81x the CPU and 0.94x the wall time (docs/performance.md).
IN_PROCESS_JVM_OPTIONS = (
    "-XX:+UseSerialGC -XX:Tier4InvocationThreshold=50000 -XX:Tier4MinInvocationThreshold=6000"
    " -XX:Tier4CompileThreshold=150000 -XX:Tier4BackEdgeThreshold=400000"
)

EXECUTION_DT = "2026-11-29"
# A small forest and grid: enough to learn the signal, fast on two cores.
TRAIN_ARGS = ("--num-trees", "10", "--max-depth", "5")
TUNE_GRID = {"max_depth": (3, 5), "max_bins": (16,), "num_trees": (5, 10)}
TUNE_FOLDS = 2


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers run the venv's Python
    builder = (
        SparkSession.builder.master("local[2]")
        .appName("churn-ml-tests")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "2g")
        .config("spark.driver.extraJavaOptions", IN_PROCESS_JVM_OPTIONS)
        # Else PySpark 4 records the caller's file and line in the JVM on every Column call:
        # three JVM round trips and a failed IPython import each. Off, the fast Spark tests
        # took 0.93x the wall time (docs/performance.md); query errors name no test line.
        .config("spark.python.sql.dataFrameDebugging.enabled", "false")
    )
    for key, value in COMMON.items():
        builder = builder.config(key, value)
    with pytest.MonkeyPatch.context() as patch:
        if os.environ["SPARK_SUBMIT_OPTS"] == SHORT_JVM_OPTIONS:
            patch.delenv("SPARK_SUBMIT_OPTS")
        session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


# --- Data --------------------------------------------------------------------------------


def blank_total_charges(path: Path) -> int:
    """Rows whose TotalCharges is blank, counted with the csv module (an oracle besides Spark)."""
    with path.open(newline="", encoding="utf-8") as f:
        return sum(1 for row in csv.DictReader(f) if not row["TotalCharges"].strip())


def data_rows(path: Path) -> int:
    with path.open(newline="", encoding="utf-8") as f:
        return sum(1 for _ in csv.reader(f)) - 1


@pytest.fixture(scope="session")
def reference_train_csv() -> Path:
    if not REFERENCE_TRAIN.is_file():
        pytest.skip(f"reference training data not found at {REFERENCE_TRAIN}")
    return REFERENCE_TRAIN


@pytest.fixture(scope="session")
def reference_score_csv() -> Path:
    if not REFERENCE_SCORE.is_file():
        pytest.skip(f"reference scoring data not found at {REFERENCE_SCORE}")
    return REFERENCE_SCORE


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def generated_train_csv(data_dir) -> Path:
    path = data_dir / "generated_train.csv"
    sample_data.write_csv(path, 3000, seed=7)
    return path


@pytest.fixture(scope="session")
def generated_score_csv(data_dir) -> Path:
    """Unlabelled rows, about 2% with a blank TotalCharges so that some are rejected."""
    path = data_dir / "generated_score.csv"
    sample_data.write_csv(path, 1000, seed=8, with_label=False, blank_total_charges_fraction=0.02)
    return path


# --- Job runs ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    name: str
    train_csv: Path
    score_csv: Path

    @functools.cached_property
    def rows_in(self) -> int:
        return data_rows(self.train_csv)

    @functools.cached_property
    def dropped(self) -> int:
        return blank_total_charges(self.train_csv)

    @functools.cached_property
    def score_rows(self) -> int:
        return data_rows(self.score_csv)

    @functools.cached_property
    def score_rejects(self) -> int:
        return blank_total_charges(self.score_csv)


class JobRuns:
    """preprocess -> train -> tune -> score of one pipeline run; each job runs once, when first
    needed, into its own folder. Exceptions are not cached: a failing job fails each test."""

    def __init__(self, spark: SparkSession, source: Source, root: Path, pipeline_id: str):
        self.spark = spark
        self.source = source
        self.root = root
        self.pipeline_id = pipeline_id
        self.dataset = root / "warehouse"
        self.train_model = root / "models" / "training" / pipeline_id
        self.train_metrics = root / "metrics" / "training" / pipeline_id
        self.tune_model = root / "models" / "tuning" / pipeline_id
        self.tune_metrics = root / "metrics" / "tuning" / pipeline_id
        self.model_version = f"training-{pipeline_id}"
        self.execution_dt = EXECUTION_DT
        self.tune_grid = TUNE_GRID
        self.tune_folds = TUNE_FOLDS

    def lineage_args(self) -> list[str]:
        return ["--pipeline-id", self.pipeline_id, "--day", EXECUTION_DT]

    def train_args(self, model: Path, metrics: Path) -> list[str]:
        return [
            *self.lineage_args(),
            "--dataset-uri",
            str(self.dataset),
            "--model-uri",
            str(model),
            "--metrics-uri",
            str(metrics),
            *TRAIN_ARGS,
        ]

    @functools.cached_property
    def preprocessed(self) -> dict:
        import preprocess

        return preprocess.main(
            [
                *self.lineage_args(),
                "--input-uri",
                str(self.source.train_csv),
                "--dataset-uri",
                str(self.dataset),
            ]
        )

    @functools.cached_property
    def trained(self) -> dict:
        import train

        assert self.preprocessed
        return train.main(self.train_args(self.train_model, self.train_metrics))

    @functools.cached_property
    def tuned(self) -> dict:
        import tune

        assert self.preprocessed
        args = [
            *self.lineage_args(),
            "--dataset-uri",
            str(self.dataset),
            "--model-uri",
            str(self.tune_model),
            "--metrics-uri",
            str(self.tune_metrics),
            "--folds",
            str(self.tune_folds),
            "--parallelism",
            "2",
        ]
        for name, values in self.tune_grid.items():
            args += [f"--{name.replace('_', '-')}-grid", ",".join(map(str, values))]
        return tune.main(args)

    @functools.cached_property
    def scored(self) -> dict:
        import score

        assert self.trained
        return score.main(self.score_args(self.dataset))

    def score_args(self, dataset: Path, pipeline_id: str | None = None) -> list[str]:
        return [
            "--pipeline-id",
            pipeline_id or self.pipeline_id,
            "--pipeline-execution-dt",
            EXECUTION_DT,
            "--input-uri",
            str(self.source.score_csv),
            "--model-uri",
            str(self.train_model),
            "--model-version",
            self.model_version,
            "--dataset-uri",
            str(dataset),
        ]

    def table(self, name: str, **partition: str) -> DataFrame:
        from churn_ml import storage

        return storage.read_table(self.spark, str(self.dataset / name), partition or None)

    def metrics_json(self, metrics_dir: Path) -> dict:
        return json.loads((metrics_dir / "metrics.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def source(generated_train_csv, generated_score_csv) -> Source:
    """The reference data when ``../shared/data`` has it, else generated data: the end-to-end
    tests run either way."""
    if REFERENCE_TRAIN.is_file() and REFERENCE_SCORE.is_file():
        return Source("reference", REFERENCE_TRAIN, REFERENCE_SCORE)
    return Source("generated", generated_train_csv, generated_score_csv)


@pytest.fixture(scope="session")
def reference_runs(spark, reference_train_csv, reference_score_csv, tmp_path_factory) -> JobRuns:
    source = Source("reference", reference_train_csv, reference_score_csv)
    return JobRuns(spark, source, tmp_path_factory.mktemp("reference_runs"), "20261129")


@pytest.fixture(scope="session")
def generated_runs(spark, generated_train_csv, generated_score_csv, tmp_path_factory) -> JobRuns:
    source = Source("generated", generated_train_csv, generated_score_csv)
    return JobRuns(spark, source, tmp_path_factory.mktemp("generated_runs"), "gen-20261129")


@pytest.fixture(params=["reference", "generated"])
def runs(request) -> JobRuns:
    """The job runs on the reference CSV and on generated data (each built once a session)."""
    return request.getfixturevalue(f"{request.param}_runs")


# --- Cleaned rows and feature vectors of the generated data -------------------------------


@pytest.fixture(scope="session")
def generated_rows(spark, generated_train_csv) -> Iterator[DataFrame]:
    """The generated training rows, cleaned and labelled (label 1.0 = churn)."""
    from churn_ml import cleaning, raw_csv
    from churn_ml.model import with_label

    raw = raw_csv.read(spark, str(generated_train_csv), with_label=True)
    rows = with_label(cleaning.clean(cleaning.parse(raw))).cache()
    yield rows
    rows.unpersist()


@pytest.fixture(scope="session")
def feature_model(generated_rows):
    """The feature stages fitted on the generated rows."""
    from pyspark.ml import Pipeline

    from churn_ml.model import feature_stages

    return Pipeline(stages=feature_stages()).fit(generated_rows)


@pytest.fixture(scope="session")
def generated_vectors(generated_rows, feature_model) -> Iterator[DataFrame]:
    """customer_id, features and label of the generated rows, as tuning sees them."""
    from churn_ml.model import FEATURES, LABEL_INDEX

    vectors = (
        feature_model.transform(generated_rows)
        .select("customer_id", FEATURES, LABEL_INDEX)
        .repartition(2, "customer_id")
        .cache()
    )
    yield vectors
    vectors.unpersist()


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """This process's environment: subprocesses import the project installed in the venv."""
    return dict(os.environ)


@pytest.fixture(autouse=True)
def _default_backend(monkeypatch):
    """Every test starts on the local backend unless it sets CHURN_BACKEND itself."""
    monkeypatch.delenv("CHURN_BACKEND", raising=False)


@pytest.fixture(scope="session")
def gcs_emulator():
    """A GCS JSON API server for the session; google-cloud-storage clients talk to it."""
    from tests import gcs_emulator as emulator

    with emulator.serve() as url, pytest.MonkeyPatch.context() as patch:
        patch.setenv("STORAGE_EMULATOR_HOST", url)
        yield url


# How ``make test`` shares two workers (--dist loadfile, refined below): the stack tests, which
# wait on schedulers and polls, start first, one per worker, beside the CPU-bound files; the
# in-process Spark tests all live in one folder that goes to one worker as one unit, so one
# JVM warms up for all of them. (xdist's own groups, --dist loadgroup, group nothing under
# pytest 9.2: pytest-xdist issue #1386.)
STARTED_FIRST = ("test_running_airflow.py", "test_composer_environment.py")
IN_PROCESS_SPARK = "tests/spark_jobs/"
# ``runs`` reaches the session through getfixturevalue, so its tests do not list ``spark``.
SPARK_FIXTURES = {"spark", "runs"}


def in_spark_folder(nodeid: str) -> bool:
    return nodeid.startswith(IN_PROCESS_SPARK)


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if SPARK_FIXTURES & set(item.fixturenames) and not in_spark_folder(item.nodeid):
            raise pytest.UsageError(
                f"{item.nodeid} uses the in-process SparkSession: move it under {IN_PROCESS_SPARK}"
            )

    def rank(item) -> int:
        name = item.path.name
        if name in STARTED_FIRST:
            return STARTED_FIRST.index(name)
        return len(STARTED_FIRST) + (not in_spark_folder(item.nodeid))

    items.sort(key=rank)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """--dist loadfile with the Spark folder as one unit, the units in collection order."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SparkFolderTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return IN_PROCESS_SPARK if in_spark_folder(nodeid) else nodeid.split("::", 1)[0]

    config.option.loadscopereorder = False  # xdist would sort the units by their test count
    return SparkFolderTogether(config, log)
