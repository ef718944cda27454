"""What training and tuning share: their arguments and input, and everything a run publishes.

A run publishes the model (its folder holds the training profile, ``profile.json``, which
scoring measures drift against: ``churn_ml.drift``), ``test_predictions``,
``model_feature_importance_scores``, ``model_metrics`` and ``metrics.json``. The model and
tables are committed first and ``metrics.json`` last, so its presence means a complete run.
When the run started with a champion, the champion is scored on the same test rows and
``metrics.json`` and ``model_metrics`` carry the comparison (see ``churn_ml.champion``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from churn_core import layout
from churn_core.layout import (
    FEATURE_IMPORTANCE,
    MODEL_METRICS,
    TEST_PREDICTIONS,
    TRAINING_DATA,
    table_uri,
)
from churn_core.run_records import ModelMetrics
from churn_core.stages import Stage
from churn_ml import champion as champions
from churn_ml import cli, comparison, drift, storage
from churn_ml.cleaning import with_lineage
from churn_ml.evaluation import evaluate
from churn_ml.frames import local_frame
from churn_ml.model import (
    CHURN_PROBABILITY,
    DEFAULT_SEED,
    LABEL_INDEX,
    canonical_order,
    churn_probability,
    feature_importances,
    split,
    with_label,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunTarget:
    pipeline_id: str
    day: dt.date
    operation: str
    attempt: str
    dataset_uri: str
    model_uri: str
    metrics_uri: str

    @property
    def partition(self) -> dict[str, str]:
        """One model version's rows: no other attempt of the run, however it starts, ever
        replaces them."""
        return {"operation": self.operation, "pipeline_id": self.pipeline_id,
                "attempt": self.attempt}  # fmt: skip


def test_predictions(predictions: DataFrame) -> DataFrame:
    """Pure transform: the columns kept for each test row."""
    return predictions.select(
        "customer_id",
        F.col(LABEL_INDEX).cast("int").alias("label"),
        F.col("prediction").cast("int").alias("prediction"),
        CHURN_PROBABILITY,
    )


def add_run_arguments(p) -> None:
    """Arguments shared by training and tuning."""
    cli.add_dataset_uri(p)
    p.add_argument("--model-uri", required=True, help="where the fitted PipelineModel is saved")
    p.add_argument("--metrics-uri", required=True, help="folder for metrics.json")
    cli.add_attempt(
        p, "with the run and operation, the model's version; its rows in the tables are its own"
    )
    p.add_argument(
        "--seed", type=cli.whole_number, default=DEFAULT_SEED, help="split and forest seed"
    )
    p.add_argument(
        "--partitions",
        type=cli.positive_int,
        default=4,
        help="fixed partition count of the training rows (part of reproducibility)",
    )
    champions.add_arguments(p)


def parse_run_args(p, argv):
    """The parsed arguments, with the champion to compare with as ``args.champion``."""
    args = p.parse_args(argv)
    args.champion = champions.from_args(p, args)
    return args


def load_split(spark, args) -> tuple[DataFrame, DataFrame, Future]:
    """This run's training rows, labelled, in canonical order, split 80/20 by a seeded hash,
    and the run's champion (a future: it loads and is checked against the test rows while
    the run fits its own model; a missing one fails here, before any fit)."""
    uri = table_uri(args.dataset_uri, TRAINING_DATA)
    rows = storage.read_table(spark, uri, {"pipeline_id": args.pipeline_id})
    train, test = split(with_label(rows), args.seed)
    champions.require_present(spark, args.champion)
    loader = ThreadPoolExecutor(1, thread_name_prefix="champion")
    champion = loader.submit(champions.prepare, spark, args.champion, args.seed, test)
    loader.shutdown(wait=False)  # the thread ends with its one task
    return canonical_order(train, args.partitions).cache(), test, champion


def _versus(
    predictions: DataFrame, champion: champions.Champion | None, report: dict, replicates: int
) -> tuple[dict | None, dict | None]:
    """The champion's evaluation and the comparison's summary (None, None without one)."""
    if champion is None:
        return None, None
    if champion.incomparable:
        log.warning("champion %s is incomparable: %s", champion.ref.version, champion.incomparable)
    started = time.monotonic()
    versus, summary = champions.compare(predictions, champion, report, replicates)
    log.info(
        "compared with champion %s in %.1f s", champion.ref.version, time.monotonic() - started
    )
    return versus, summary


def run_target(args, stage: Stage) -> RunTarget:
    return RunTarget(
        pipeline_id=args.pipeline_id,
        day=args.day,
        operation=stage.folder,
        attempt=args.attempt,
        dataset_uri=args.dataset_uri,
        model_uri=args.model_uri,
        metrics_uri=args.metrics_uri,
    )


def _tagged(df: DataFrame, target: RunTarget) -> DataFrame:
    lineage = with_lineage(df, target.pipeline_id, target.day)
    return lineage.withColumns(
        {"operation": F.lit(target.operation), "attempt": F.lit(target.attempt)}
    )


def metric_rows(spark, metrics: dict[str, float]) -> DataFrame:
    return local_frame(
        spark,
        [(name, float(value)) for name, value in sorted(metrics.items())],
        "metric_name string, metric_value double",
    )


def _write(df: DataFrame, target: RunTarget, name: str) -> None:
    storage.write_table(_tagged(df, target), table_uri(target.dataset_uri, name), target.partition)


def publish(
    model: PipelineModel,
    test: DataFrame,
    target: RunTarget,
    details: dict,
    champion: Future | None = None,
    replicates: int = comparison.REPLICATES,
    *,
    features: drift.Profiled,
) -> dict:
    """Write the model, tables and metrics.json of one run; returns the metrics document.

    The comparison with the ``champion`` (a future of ``load_split``) runs while the model
    and the first two tables are written; ``model_metrics`` and ``metrics.json`` carry it.
    ``features`` is the training rows' ``drift.feature_bins``; with the test rows' churn
    probabilities it makes the profile saved in the model's folder before it is published.
    """
    spark = test.sparkSession
    if storage.exists(spark, storage.normalize(target.model_uri)):
        raise FileExistsError(
            f"model {target.model_uri} exists: an attempt never replaces a model's files"
        )
    loaded = champion.result() if champion else None  # an unreadable one fails before writing
    predictions = churn_probability(model.transform(test)).cache()
    try:
        report = evaluate(predictions)
        importances = feature_importances(model, predictions)
        with ThreadPoolExecutor(1, thread_name_prefix="comparison") as background:
            comparing = background.submit(_versus, predictions, loaded, report, replicates)
            staged_model = storage.staging_uri(storage.normalize(target.model_uri))
            model.write().overwrite().save(staged_model)
            profile = drift.training_profile(features, predictions)
            storage.write_text(spark, layout.profile_uri(staged_model), profile.to_json())
            storage.commit(spark, staged_model, storage.normalize(target.model_uri))
            tables = {
                TEST_PREDICTIONS: test_predictions(predictions),
                FEATURE_IMPORTANCE: local_frame(
                    spark, importances, "feature_name string, importance double"
                ),
            }
            for name, df in tables.items():
                _write(df, target, name)
            versus, summary = comparing.result()
        metrics = {**report["metrics"], **champions.metric_rows(summary, versus)}
        _write(metric_rows(spark, metrics), target, MODEL_METRICS)
    finally:
        predictions.unpersist()
    document = ModelMetrics(
        pipeline_id=target.pipeline_id,
        pipeline_execution_dt=target.day.isoformat(),
        operation=target.operation,
        model_uri=target.model_uri,
        **details,
        **report,
        feature_importances=[{"feature": f, "importance": w} for f, w in importances],
        champion=versus,
        comparison=summary,
    ).to_json()
    storage.write_text(
        spark,
        f"{target.metrics_uri.rstrip('/')}/{layout.METRICS_JSON}",
        json.dumps(document, indent=2),
    )
    log.info(
        "%s %s: test AUPR %.4f, AUROC %.4f, accuracy %.4f",
        target.operation,
        target.pipeline_id,
        report["metrics"]["au_pr"],
        report["metrics"]["au_roc"],
        report["metrics"]["accuracy"],
    )
    if summary and summary["comparable"]:
        pr = summary["au_pr"]
        log.info(
            "champion %s on the same %d rows: AUPR %.4f, difference %+.4f, %.0f%% interval "
            "[%+.4f, %+.4f] (%d bootstrap replicates)",
            summary["champion"],
            summary["rows"],
            pr["champion"],
            pr["delta"],
            100 * summary["confidence"],
            pr["lower"],
            pr["upper"],
            summary["replicates"],
        )
    return document
