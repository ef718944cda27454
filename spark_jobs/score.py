"""Batch scoring: the day's customers -> ``batch_predictions`` with the given model version.

Each input customer gets one row: a prediction, or in ``batch_rejects`` the reason it cannot
be scored, so customers_in = scored + rejected (``churn_ml.customers`` defines the count).
One pass over the input cleans and scores every customer and stages both tables, counting on
the way; past ``--max-reject-fraction`` the staged rows are dropped and the job fails with
nothing visible. Both tables commit together, then ``--stats-uri`` receives the run's counts
as a small JSON document.

With ``--commit-record-uri`` the job takes over that record when it starts, and commits (the
tables, the drift report and the counts) only while it still holds it: an attempt a later one
superseded fails with one sentence and leaves nothing (``churn_ml.commit_record``). Each
attempt stages under its own names.

With ``--drift-uri`` the same pass also counts the scored rows' features and churn
probabilities in the bins of the model's training profile (``churn_ml.drift``; the compiled
model counts them in its own Python pass, ``churn_ml.drift_counts``): the
``feature_drift`` table commits with the other two, then the folder receives ``drift.png``,
``drift.html`` and, last, ``drift.json``. A model saved without a profile still scores; its
report says there is no baseline.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from churn_core import defaults, psi, stages
from churn_core.layout import (
    BATCH_PREDICTIONS,
    BATCH_REJECTS,
    FEATURE_DRIFT,
    PROFILE_FILE,
    profile_uri,
    table_uri,
)
from churn_core.run_records import RunStats
from churn_ml import (
    champion,
    cleaning,
    cli,
    commit_record,
    customers,
    drift,
    drift_counts,
    drift_report,
    raw_csv,
    run_events,
    storage,
)
from churn_ml.compiled_model import load_compiled
from churn_ml.frames import local_frame
from churn_ml.model import CHURN_PROBABILITY, churn_probability
from churn_ml.schema import LINEAGE_COLUMNS

log = logging.getLogger("churn_ml.score")

MODEL_VERSION = "model_version"
_BACKGROUND = ThreadPoolExecutor(1, thread_name_prefix="drift-report")
REJECT_COLUMNS = ("customer_id", cleaning.REJECT_REASON, MODEL_VERSION, *LINEAGE_COLUMNS)


def parse_args(argv: Sequence[str] | None):
    p = cli.parser(__doc__)
    p.add_argument("--input-uri", required=True, help="the day's scoring CSV (file or folder)")
    p.add_argument("--model-uri", required=True, help="saved PipelineModel to score with")
    p.add_argument("--model-version", required=True, help="recorded in every output row")
    cli.add_dataset_uri(p)
    commit_record.add_arguments(p)
    cli.add_limit(
        p, "--max-reject-fraction", defaults.MAX_REJECT_FRACTION, "customers cannot be scored"
    )
    p.add_argument(
        "--stats-uri",
        help="where to write the run's counts as JSON once the tables are committed "
        "(the scoring DAG's check reads them)",
    )
    p.add_argument(
        "--drift-uri",
        help="folder for drift.json, drift.png and drift.html; measures drift against the "
        "model's training profile and writes the feature_drift table (none without it)",
    )
    p.add_argument(
        "--drift-warning",
        type=float,
        default=psi.DEFAULT_WARNING,
        help=f"PSI from which a feature's drift is a warning (default {psi.DEFAULT_WARNING})",
    )
    p.add_argument(
        "--drift-alert",
        type=float,
        default=psi.DEFAULT_ALERT,
        help=f"PSI from which a feature's drift is an alert (default {psi.DEFAULT_ALERT})",
    )
    args = p.parse_args(argv)
    try:
        psi.check_thresholds(args.drift_warning, args.drift_alert)
    except ValueError as err:
        p.error(str(err))
    return args


Scorer = Callable[[DataFrame], DataFrame]


def load_scorer(
    spark: SparkSession, model_uri: str, profile: drift.Profile | None = None
) -> tuple[Scorer, drift_counts.BinCounter | None]:
    """The saved model as a function adding ``prediction`` and ``churn_probability``, and,
    given the model's drift profile, the counter of its bins in the model's own pass.

    The compiled form when the model has the shape training fits, else the model's transform
    (and no counter: the job then counts the bins with an ``Observation``).
    """
    uri = storage.normalize(model_uri)
    compiled = load_compiled(spark, uri)
    if compiled is not None:
        reject = cleaning.REJECT_REASON
        counter = drift_counts.counter(spark, profile, compiled, reject) if profile else None
        return (lambda customers: compiled.transform(customers, counter)), counter
    model = PipelineModel.load(uri)
    return (lambda customers: churn_probability(model.transform(customers))), None


def every_row_cleaned(parsed: DataFrame) -> DataFrame:
    """Pure transform: ``cleaning.clean``'s recoding of every parsed row, rejects included,
    each keeping its ``reject_reason`` (``clean`` itself keeps the usable rows only)."""
    reason, kept = cleaning.REJECT_REASON, "_reject_reason"
    usable = parsed.withColumnRenamed(reason, kept).withColumn(reason, F.lit(None).cast("string"))
    return cleaning.clean(usable).withColumnRenamed(kept, reason)


def outcomes(scorer: Scorer, parsed: DataFrame, model_version: str) -> DataFrame:
    """Pure transform: every row cleaned and scored, with its model version and reject reason
    (null for a row the model can use; a rejected row's scores mean nothing and are dropped)."""
    rows = every_row_cleaned(parsed)
    return scorer(rows).select(
        *rows.columns,
        F.col("prediction").cast("int").alias("prediction"),
        CHURN_PROBABILITY,
        F.lit(model_version).alias(MODEL_VERSION),
    )


def load_profile(spark: SparkSession, model_uri: str, model_version: str):
    """(the model's training profile, None), or (None, why there is none)."""
    uri = profile_uri(storage.normalize(model_uri))
    if not storage.exists(spark, uri):
        return None, (
            f"the model {model_version} has no training profile ({PROFILE_FILE}): it was saved "
            "before drift monitoring, so there is no baseline; a model trained since has one"
        )
    return drift.Profile.from_json(storage.read_text(spark, uri)), None


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    return run_events.run_job(scoring_lineage(args), lambda spark: score(spark, args))


def score(spark: SparkSession, args) -> dict:
    claim = commit_record.from_args(args)
    raw = raw_csv.read(spark, args.input_uri, with_label=False)
    records = customers.one_per_customer(cleaning.parse(raw))
    champion.require_present(spark, champion.ChampionRef(args.model_version, args.model_uri, None))
    profile, no_baseline = None, None
    if args.drift_uri:
        profile, no_baseline = load_profile(spark, args.model_uri, args.model_version)
    scorer, counter = load_scorer(spark, args.model_uri, profile)
    scored = F.col(cleaning.REJECT_REASON).isNull()
    counts = Observation("scoring input")
    counted = records.observe(counts, *customers.tally()).where(~customers.repeated_header())
    rows = cleaning.with_lineage(
        outcomes(scorer, counted, args.model_version), args.pipeline_id, args.day
    )
    drifts = Observation("drift")  # the scored rows' bins, in the same pass
    if profile and counter is None:
        rows = rows.observe(drifts, *drift.observed_counts(profile, scored))
    # The one pass: predictions and rejects staged by a single write, counted on the way.
    try:
        split = storage.stage_split(
            rows,
            cleaning.REJECT_REASON,
            table_uri(args.dataset_uri, BATCH_PREDICTIONS),
            table_uri(args.dataset_uri, BATCH_REJECTS),
            REJECT_COLUMNS,
            {"pipeline_id": args.pipeline_id},
            owner=args.attempt,
        )
    except Exception as err:  # FAILFAST read: a line that is not a CSV record
        malformed = raw_csv.malformed_input(err)
        if malformed:
            raise malformed from err
        raise
    tables = []
    try:
        tally = counts.get
        check_rejects(split, tally["customers_in"], tally["rejected"], args.max_reject_fraction)
        tables = split.tables()
        if args.drift_uri:
            observed = (counter.counts() if counter else drifts.get) if profile else None
            document = drift_document(args, profile, observed, no_baseline)
            # The plot renders while the tables are staged and committed.
            rendering = _BACKGROUND.submit(drift_report.render, document)
            tables.append(stage_drift_table(spark, args, document))
        stats = run_stats(args, tally)
        with claim.committing():
            storage.commit_all(tables)  # rejects, predictions, drift (at once on BigQuery)
            if args.drift_uri:
                drift_report.write(spark, args.drift_uri, document, rendering.result())
            if args.stats_uri:
                storage.write_text(spark, args.stats_uri, json.dumps(stats, indent=2) + "\n")
    except BaseException:
        split.discard()
        for table in tables:  # what is still staged (a committed table has nothing left)
            table.discard()
        raise
    log.info(
        "scored %(scored)d of %(customers_in)d customers (%(rows_in)d rows, %(repeated_headers)d "
        "repeated header lines dropped), rejected %(rejected)d, model %(model_version)s",
        stats,
    )
    return stats


def scoring_lineage(args) -> run_events.JobRun:
    """The day's raw files and the model version in; the run's partitions of the predictions,
    the rejects and (with drift) the feature drift out."""
    tables = [BATCH_PREDICTIONS, BATCH_REJECTS] + ([FEATURE_DRIFT] if args.drift_uri else [])
    return run_events.JobRun(
        stages.SCORING.name,
        args.pipeline_id,
        args.attempt,
        (run_events.DatasetRef(args.input_uri), run_events.DatasetRef(args.model_uri)),
        tuple(
            run_events.DatasetRef(table_uri(args.dataset_uri, t), args.pipeline_id) for t in tables
        ),
        args.model_version,
    )


def drift_document(args, profile: drift.Profile | None, observed: dict, no_baseline) -> dict:
    run = {
        "pipeline_id": args.pipeline_id,
        "pipeline_execution_dt": args.day.isoformat(),
        "model_version": args.model_version,
    }
    thresholds = {"warning": args.drift_warning, "alert": args.drift_alert}
    return drift.report(run, thresholds, profile, observed, no_baseline)


def stage_drift_table(spark: SparkSession, args, document: dict) -> storage.StagedTable:
    """The run's ``feature_drift`` rows, staged (none without a baseline: a re-run still
    replaces the run's earlier rows)."""
    rows = local_frame(
        spark,
        drift.table_rows(document),
        "feature string, psi double, unseen_share double, status string",
    )
    tagged = cleaning.with_lineage(rows, args.pipeline_id, args.day)
    columns = ("feature", "psi", "unseen_share", "status")
    return storage.stage_table(
        tagged.select(*LINEAGE_COLUMNS, F.lit(args.model_version).alias(MODEL_VERSION), *columns),
        table_uri(args.dataset_uri, FEATURE_DRIFT),
        {"pipeline_id": args.pipeline_id},
        owner=args.attempt,
    )


def check_rejects(
    split: storage.StagedSplit, customers_in: int, rejected: int, max_fraction: float
) -> None:
    """Fail when there is nothing to score, or when too many customers cannot be scored (the
    reasons counted from the staged rejects)."""
    if not customers_in:
        raise cli.InputError("the scoring input has a header but no rows")
    if rejected > max_fraction * customers_in:
        reasons = split.side_rows().groupBy(cleaning.REJECT_REASON).count().collect()
        raise cli.InputError(
            f"{rejected} of {customers_in} customers cannot be scored, more than the allowed "
            f"fraction {max_fraction}: "
            + str({r[cleaning.REJECT_REASON]: r["count"] for r in reasons})
        )


def run_stats(args, tally: dict) -> dict:
    """What the run knows of itself, for the check that compares it with the tables
    (``customers.tally``'s counts): a ``RunStats`` document."""
    return RunStats(
        pipeline_id=args.pipeline_id,
        pipeline_execution_dt=args.day.isoformat(),
        model_version=args.model_version,
        rows_in=tally["rows_in"],
        repeated_headers=tally["repeated_headers"],
        customers_in=tally["customers_in"],
        scored=tally["customers_in"] - tally["rejected"],
        rejected=tally["rejected"],
    ).to_json()


if __name__ == "__main__":
    cli.run(main)
