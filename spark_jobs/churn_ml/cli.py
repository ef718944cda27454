"""What every job entrypoint shares: argument types, logging and a fail-loudly runner."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

from churn_core import lineage
from churn_ml.session import JavaMissingError

log = logging.getLogger("churn_ml")


class InputError(ValueError):
    """The input data breaks the contract; the message says how."""


class JobError(RuntimeError):
    """The job cannot do what it was asked; the message says why in one sentence."""


T = TypeVar("T")


def argument_type(check: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse ``type`` from a check that raises ValueError: its message is the error."""

    def parse(value: str) -> T:
        try:
            return check(value)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return parse


pipeline_id = argument_type(lineage.check_pipeline_id)
iso_date = argument_type(lineage.parse_day)
attempt = argument_type(lineage.check_attempt)
STANDALONE_ATTEMPT = "local-1"  # a job run by hand, outside a pipeline


def fraction(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a fraction between 0 and 1")
    return number


def whole_number(value: str) -> int:
    """An integer; "5.0" is accepted because kfp.local renders integer parameters so."""
    try:
        number = float(value)
    except ValueError:
        number = 0.5
    if not number.is_integer():
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer")
    return int(number)


def positive_int(value: str) -> int:
    number = whole_number(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive integer")
    return number


def int_list(value: str) -> list[int]:
    """Comma-separated positive integers, e.g. ``5,10,15``."""
    try:
        numbers = [int(v) for v in value.split(",")]
    except ValueError:
        numbers = []
    if not numbers or min(numbers) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a list of positive integers like 5,10")
    return sorted(set(numbers))


def parser(description: str) -> argparse.ArgumentParser:
    """A parser with the lineage arguments every job takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--pipeline-id", type=pipeline_id, required=True, help="lineage key of this run")
    add_day(p, "--pipeline-execution-dt")
    return p


def add_day(p: argparse.ArgumentParser, *aliases: str) -> None:
    """``--day`` (``args.day``): the day a run reads, the one name for it everywhere; its rows
    carry it as ``pipeline_execution_dt``, the lab's column. ``aliases`` are older names."""
    p.add_argument(
        "--day",
        *aliases,
        dest="day",
        type=iso_date,
        default=dt.datetime.now(dt.UTC).date(),
        help="the day the run reads, YYYY-MM-DD (default: today, UTC)",
    )


def add_limit(p: argparse.ArgumentParser, flag: str, default: float, what: str) -> None:
    """A fraction the job fails above: ``what`` completes "more than this fraction of ..."."""
    p.add_argument(
        flag,
        type=fraction,
        default=default,
        help=f"fail when more than this fraction of {what} (default {default})",
    )


def add_dataset_uri(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset-uri", required=True, help="bq://project.dataset or a warehouse folder"
    )


def add_attempt(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--attempt",
        type=attempt,
        default=STANDALONE_ATTEMPT,
        help=f"this attempt of the run (run key and try): {what} (default {STANDALONE_ATTEMPT})",
    )


def run(main: Callable[[Sequence[str] | None], object], argv: Sequence[str] | None = None) -> None:
    """Run a job's main; any failure is logged with its reason and exits non-zero."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        main(argv)
    except InputError as err:
        log.error("bad input: %s", err)
        sys.exit(3)
    except (JavaMissingError, JobError) as err:
        log.error("%s", err)
        sys.exit(1)
    except Exception:
        log.exception("job failed")
        sys.exit(1)
