"""Preprocessing: raw churn CSV -> the cleaned ``training_data`` table of one pipeline run."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from churn_ml import cleaning, cli, raw_csv, storage
from churn_ml.layout import table_uri
from churn_ml.schema import TRAINING_DATA
from churn_ml.session import build_session

log = logging.getLogger("churn_ml.preprocess")


def parse_args(argv: Sequence[str] | None):
    p = cli.parser(__doc__)
    p.add_argument("--input-uri", required=True, help="raw training CSV (file or folder)")
    cli.add_dataset_uri(p)
    p.add_argument(
        "--max-drop-fraction",
        type=cli.fraction,
        default=0.05,
        help="fail when more than this fraction of rows is unusable (default 0.05)",
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    spark = build_session("churn-preprocessing")
    parsed = cleaning.parse(raw_csv.read(spark, args.input_uri, with_label=True)).cache()
    try:
        stats = drop_stats(parsed)
        if stats["invalid_labels"]:
            raise cli.InputError(
                f"{stats['invalid_labels']} rows have a Churn label other than Yes/No"
            )
        if not stats["rows_in"]:
            raise cli.InputError("the input has a header but no rows")
        dropped = sum(stats["dropped"].values())
        if dropped > args.max_drop_fraction * stats["rows_in"]:
            raise cli.InputError(
                f"{dropped} of {stats['rows_in']} rows are unusable, more than the allowed "
                f"fraction {args.max_drop_fraction}: {stats['dropped']}"
            )
        cleaned = cleaning.clean(parsed)
        unique = cleaned.dropDuplicates()
        out = cleaning.with_lineage(unique, args.pipeline_id, args.pipeline_execution_dt).cache()
        stats["rows_out"] = out.count()
        stats["duplicates"] = stats["rows_in"] - dropped - stats["rows_out"]
        target = table_uri(args.dataset_uri, TRAINING_DATA)
        storage.write_table(out, target, {"pipeline_id": args.pipeline_id})
    finally:
        parsed.unpersist()
    log.info(
        "rows in %d, dropped %d %s, duplicates removed %d, rows out %d -> %s",
        stats["rows_in"],
        dropped,
        stats["dropped"],
        stats["duplicates"],
        stats["rows_out"],
        target,
    )
    return stats


def drop_stats(parsed) -> dict:
    """Row count, unusable rows by reason and bad labels, in one Spark job."""
    try:
        rows = (
            parsed.groupBy(
                cleaning.REJECT_REASON, cleaning.invalid_labels(parsed).alias("bad_label")
            )
            .count()
            .collect()
        )
    except Exception as err:  # FAILFAST read: a line that is not a CSV record
        malformed = raw_csv.malformed_input(err)
        if malformed:
            raise malformed from err
        raise
    dropped: dict[str, int] = {}
    for r in rows:
        if r[cleaning.REJECT_REASON]:
            dropped[r[cleaning.REJECT_REASON]] = (
                dropped.get(r[cleaning.REJECT_REASON], 0) + r["count"]
            )
    return {
        "rows_in": sum(r["count"] for r in rows),
        "dropped": dict(sorted(dropped.items())),
        "invalid_labels": sum(r["count"] for r in rows if r["bad_label"]),
    }


if __name__ == "__main__":
    cli.run(main)
