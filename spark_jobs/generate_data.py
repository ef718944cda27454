"""Write synthetic telco churn CSVs shaped like the reference churn data.

One file:           generate_data.py --rows 100000 --output data/train.csv
Daily partitions:   generate_data.py --rows 100000 --kind score --output data/score \\
                        --dates 2026-11-27,2026-11-28   (-> data/score/dt=YYYY-MM-DD/part-00000.csv)

A shifted day, for drift demos: --shift MonthlyCharges=+30 --shift Contract=+0.3 (repeatable;
churn_ml.sample_data.SHIFTABLE says what each amount means).

Same arguments give byte-identical files; each date gets its own derived seed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time
from collections.abc import Sequence

from churn_ml import cli
from churn_ml.sample_data import (
    DEFAULT_BLANK_TOTAL_CHARGES_FRACTION,
    SHIFTABLE,
    check_shift,
    write_csv,
    write_daily_partitions,
)

log = logging.getLogger("churn_ml.generate_data")


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive integer")
    return number


def date_list(value: str) -> list[dt.date]:
    """Comma-separated distinct dates, e.g. ``2026-11-27,2026-11-28``."""
    days = [cli.iso_date(v) for v in value.split(",")]
    if len(set(days)) != len(days):
        raise argparse.ArgumentTypeError(f"{value!r} lists a date more than once")
    return days


def blank_fraction(value: str) -> float:
    number = cli.fraction(value)
    if number == 1.0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a fraction in [0, 1)")
    return number


def shift_item(value: str) -> tuple[str, float]:
    """``COLUMN=AMOUNT``, e.g. ``MonthlyCharges=+30`` or ``Contract=-0.2``."""
    column, _, amount = value.partition("=")
    try:
        return column.strip(), float(amount)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not COLUMN=AMOUNT, e.g. MonthlyCharges=+30 or Contract=+0.3"
        ) from None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rows", type=positive_int, required=True, help="rows per file (per date)")
    p.add_argument(
        "--output",
        required=True,
        help="a .csv file; with --date/--dates, the root folder of the dt=YYYY-MM-DD partitions",
    )
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.add_argument(
        "--kind",
        choices=("train", "score"),
        default="train",
        help="train files have the Churn label, score files do not (default train)",
    )
    when = p.add_mutually_exclusive_group()
    when.add_argument("--dates", type=date_list, help="comma-separated dates, YYYY-MM-DD")
    when.add_argument("--date", type=cli.iso_date, help="a single date, YYYY-MM-DD")
    p.add_argument(
        "--blank-total-charges-fraction",
        type=blank_fraction,
        default=DEFAULT_BLANK_TOTAL_CHARGES_FRACTION,
        help="share of brand-new customers (tenure 0, blank TotalCharges); "
        f"default {DEFAULT_BLANK_TOTAL_CHARGES_FRACTION:.5f} as in the reference data",
    )
    p.add_argument(
        "--shift",
        type=shift_item,
        action="append",
        default=[],
        metavar="COLUMN=AMOUNT",
        help=f"move a column of every row, for drift demos ({', '.join(SHIFTABLE)}): "
        "MonthlyCharges=+30 adds $30 to every monthly charge (TotalCharges follows), "
        "Contract=+0.3 raises the month-to-month share by 0.3 (from 0.55); repeatable",
    )
    args = p.parse_args(argv)
    try:
        args.shift = check_shift(dict(args.shift))
    except ValueError as err:
        p.error(str(err))
    args.dates = args.dates or ([args.date] if args.date else None)
    is_csv = args.output.lower().endswith(".csv")
    if args.dates is None and not is_csv:
        p.error("--output must be a .csv file unless --date or --dates is given")
    if args.dates and is_csv:
        p.error("with --date/--dates, --output is the partitions' root folder, not a .csv file")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    options = {
        "with_label": args.kind == "train",
        "blank_total_charges_fraction": args.blank_total_charges_fraction,
        "shift": args.shift,
    }
    start = time.perf_counter()
    try:
        if args.dates:
            paths = write_daily_partitions(args.output, args.dates, args.rows, args.seed, **options)
            rows = args.rows * len(paths)
        else:
            rows = write_csv(args.output, args.rows, args.seed, **options)
    except OSError as err:
        log.error("cannot write %s: %s", args.output, err)
        return 1
    elapsed = time.perf_counter() - start
    log.info("%d %s rows in %.1f s (%.0f rows/s)", rows, args.kind, elapsed, rows / elapsed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
