"""Preprocessing: raw churn CSV -> the cleaned ``training_data`` table of one pipeline run."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from churn_core import defaults, stages
from churn_core.layout import TRAINING_DATA, table_uri
from churn_ml import cleaning, cli, commit_record, customers, raw_csv, run_events, storage
from churn_ml.schema import LABEL, LABEL_VALUES

log = logging.getLogger("churn_ml.preprocess")


def parse_args(argv: Sequence[str] | None):
    p = cli.parser(__doc__)
    p.add_argument("--input-uri", required=True, help="raw training CSV (file or folder)")
    cli.add_dataset_uri(p)
    commit_record.add_arguments(p)
    cli.add_limit(p, "--max-drop-fraction", defaults.MAX_DROP_FRACTION, "the customers is unusable")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    return run_events.run_job(preprocessing_lineage(args), lambda spark: preprocess(spark, args))


def preprocess(spark: SparkSession, args) -> dict:
    claim = commit_record.from_args(args)
    raw = raw_csv.read(spark, args.input_uri, with_label=True)
    records = customers.one_per_customer(cleaning.parse(raw))
    # One pass: the rows are staged while an Observation counts them, then judged.
    counts = Observation("preprocessing input")
    observed = records.observe(counts, *input_counts(records))
    out = cleaning.with_lineage(cleaning.clean(observed), args.pipeline_id, args.day)
    target = table_uri(args.dataset_uri, TRAINING_DATA)
    partition = {"pipeline_id": args.pipeline_id}
    staged = raw_csv.reading(
        lambda: storage.stage_table(out, target, partition, owner=args.attempt)
    )
    try:
        stats = drop_stats(counts.get)
        check(stats, args.max_drop_fraction)
        with claim.committing():
            staged.commit()
    except BaseException:
        staged.discard()
        raise
    log.info(
        "rows in %d (%d repeated header lines dropped), duplicates removed %d, customers %d, "
        "dropped %d %s, rows out %d -> %s",
        stats["rows_in"],
        stats["repeated_headers"],
        stats["duplicates"],
        stats["customers"],
        stats["customers"] - stats["rows_out"],
        stats["dropped"],
        stats["rows_out"],
        target,
    )
    return stats


def preprocessing_lineage(args) -> run_events.JobRun:
    """The day's raw files in, the run's ``training_data`` partition out."""
    return run_events.JobRun(
        stages.PREPROCESSING.name,
        args.pipeline_id,
        args.attempt,
        (run_events.DatasetRef(args.input_uri),),
        (run_events.DatasetRef(table_uri(args.dataset_uri, TRAINING_DATA), args.pipeline_id),),
    )


def input_counts(records: DataFrame) -> list[Column]:
    """The aggregates ``drop_stats`` reads, over ``one_per_customer``'s records."""
    usable = F.col(cleaning.REJECT_REASON).isNull()
    header = customers.repeated_header()
    return [
        *customers.tally(),
        *customers.reason_counts(),
        F.count_if(~header & cleaning.invalid_labels(records)).alias("invalid_labels"),
        F.count_if(usable).alias("rows_out"),
        *(F.count_if(usable & (F.col(LABEL) == v)).alias(f"label {v}") for v in LABEL_VALUES),
    ]


def drop_stats(counts: dict) -> dict:
    """The job's statistics from the ``input_counts`` of its records."""
    return {
        "rows_in": counts["rows_in"],
        "repeated_headers": counts["repeated_headers"],
        "duplicates": counts["rows_in"] - counts["customers_in"],
        "customers": counts["customers_in"],
        "dropped": {r: counts[r] for r in sorted(cleaning.REJECT_REASONS) if counts[r]},
        "invalid_labels": counts["invalid_labels"],
        "rows_out": counts["rows_out"],
        "labels": {v: counts[f"label {v}"] for v in LABEL_VALUES},
    }


def check(stats: dict, max_drop_fraction: float) -> None:
    """Raise InputError when the input breaks the contract as a whole."""
    if stats["invalid_labels"]:
        raise cli.InputError(f"{stats['invalid_labels']} rows have a Churn label other than Yes/No")
    if not stats["customers"]:
        raise cli.InputError("the input has a header but no rows")
    dropped = stats["customers"] - stats["rows_out"]
    if dropped > max_drop_fraction * stats["customers"]:
        raise cli.InputError(
            f"{dropped} of {stats['customers']} customers are unusable, more than the allowed "
            f"fraction {max_drop_fraction}: {stats['dropped']}"
        )
    present = [label.capitalize() for label, count in stats["labels"].items() if count]
    if len(present) == 1:
        raise cli.InputError(
            f"every one of the {stats['rows_out']} usable customers has Churn={present[0]}: "
            "a model needs customers of both classes to learn from"
        )


if __name__ == "__main__":
    cli.run(main)
