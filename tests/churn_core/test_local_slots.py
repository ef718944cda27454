"""The machine's local Spark slots: how many, and that a job waits for one."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from churn_core import local_slots

GIB = 1 << 30


@pytest.mark.parametrize(
    ("cores", "memory", "driver", "slots"),
    [
        (2, 24 * GIB, 4 * GIB, 2),  # this machine: the cores decide
        (16, 24 * GIB, 4 * GIB, 4),  # a big CPU, little memory: memory decides
        (1, 2 * GIB, 4 * GIB, 1),  # never none
    ],
)
def test_slots_are_what_the_machine_holds(cores, memory, driver, slots):
    assert local_slots.machine_slots(cores, memory, driver) == slots


@pytest.mark.parametrize(
    ("size", "expected"), [("4g", 4 * GIB), ("512m", 512 << 20), ("2G", 2 * GIB)]
)
def test_memory_sizes_read_as_spark_reads_them(size, expected):
    assert local_slots.memory_bytes(size) == expected


def test_a_bad_override_is_one_sentence(monkeypatch):
    monkeypatch.setenv(local_slots.SLOTS_ENV, "0")
    with pytest.raises(ValueError, match=r"^CHURN_LOCAL_SPARK_SLOTS='0': use a positive integer$"):
        local_slots.slots()


HOLD = """
import sys, time
from churn_core import local_slots
with local_slots.slot(poll_seconds=0.05):
    print("in", flush=True)
    time.sleep(float(sys.argv[1]))
"""


def test_a_job_waits_while_every_slot_is_taken_and_a_killed_holder_frees_its_own(
    monkeypatch, tmp_path
):
    monkeypatch.setenv(local_slots.SLOTS_ENV, "1")
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # slots of their own, not the machine's

    def job(seconds: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-c", HOLD, seconds], stdout=subprocess.PIPE, text=True
        )

    holder = job("60")
    assert holder.stdout.readline() == "in\n"
    waiter = job("0")
    time.sleep(1.0)
    assert waiter.poll() is None  # waiting for the one slot
    holder.kill()  # the lock goes with its process, however it ends
    holder.wait()
    out, _ = waiter.communicate(timeout=30)
    assert out.splitlines() == [
        "all 1 local Spark slots are taken: waiting for one (CHURN_LOCAL_SPARK_SLOTS)",
        out.splitlines()[1],
        "in",
    ]
    assert out.splitlines()[1].startswith("got a local Spark slot after ")
