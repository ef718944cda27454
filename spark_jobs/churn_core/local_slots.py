"""How many local Spark jobs this machine runs at once, and a slot for one of them.

Every local Spark job (a pipeline step or a scoring batch, started by spark-submit) takes a
slot first: a lock file of this user's, released when its process ends, however it ends. There
are as many slots as the machine holds jobs: one per core, and no more than its memory holds
drivers of the local heap plus their Python workers (``CHURN_LOCAL_SPARK_SLOTS`` overrides).
So a week's backfill, the demo and a manual run together never start more Spark than that.
The Airflow pool of the same size (``settings.LOCAL_SPARK_POOL``) keeps the waiting pipeline
tasks queued in the scheduler, where the UI shows them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from churn_core import spark_conf

SLOTS_ENV = "CHURN_LOCAL_SPARK_SLOTS"
JOB_OVERHEAD_BYTES = 1 << 30  # beside the driver heap: its Python workers and off-heap memory
_SIZE = re.compile(r"(\d+)([kmgt]?)b?", re.IGNORECASE)


def memory_bytes(size: str) -> int:
    """A Spark memory setting such as ``4g`` or ``512m`` in bytes."""
    match = _SIZE.fullmatch(size.strip())
    if not match:
        raise ValueError(f"{size!r} is not a memory size such as 4g or 512m")
    return int(match.group(1)) << (10 * " kmgt".index(match.group(2).lower() or " "))


def machine_slots(cores: int, memory: int, driver_memory: int) -> int:
    """Jobs a machine of ``cores`` and ``memory`` bytes runs at once: at least one."""
    return max(1, min(cores, memory // (driver_memory + JOB_OVERHEAD_BYTES)))


def slots() -> int:
    """This machine's local Spark slots (``CHURN_LOCAL_SPARK_SLOTS`` if set)."""
    given = os.environ.get(SLOTS_ENV, "").strip()
    if given:
        if not given.isdigit() or int(given) < 1:
            raise ValueError(f"{SLOTS_ENV}={given!r}: use a positive integer")
        return int(given)
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    driver = memory_bytes(spark_conf.local_properties()["spark.driver.memory"])
    return machine_slots(os.cpu_count() or 1, memory, driver)


def _take(folder: Path, total: int):
    """An open, locked slot file, or None when all ``total`` are taken."""
    for number in range(total):
        handle = open(folder / f"slot-{number}.lock", "w")  # noqa: SIM115 (held until released)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            handle.close()
    return None


@contextlib.contextmanager
def slot(log: Callable[[str], object] = print, poll_seconds: float = 2.0) -> Iterator[None]:
    """Hold one local Spark slot while the block runs; says so once if it has to wait."""
    folder = Path(tempfile.gettempdir()) / f"churn-spark-slots-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    total, told, started = slots(), False, time.monotonic()
    while (handle := _take(folder, total)) is None:
        if not told:
            log(f"all {total} local Spark slots are taken: waiting for one ({SLOTS_ENV})")
            told = True
        time.sleep(poll_seconds)
    if told:
        log(f"got a local Spark slot after {time.monotonic() - started:.0f} s")
    with handle:
        yield
