"""What a Spark job spent, and what that costs (pure).

A Dataproc batch reports ``runtime_info.approximate_usage`` when it ends: DCU-seconds (in
thousandths) and shuffle storage GB-seconds. A local job records what the machine spent: wall
and CPU seconds and peak memory. ``cost`` prices cloud usage with a price table (``Prices``:
the public list prices of us-central1, docs/gcp.md); local usage has no price.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

HOURS_PER_MONTH = 730  # how Google prorates a monthly rate per hour
CLOUD = ("dcu_hours", "shuffle_gb_hours")
LOCAL = ("wall_seconds", "cpu_seconds", "peak_memory_mb")


@dataclass(frozen=True)
class Prices:
    """Dataproc Serverless standard tier, USD: per DCU-hour, and per GB-month of shuffle."""

    dcu_hour: float = 0.06
    shuffle_gb_month: float = 0.04
    currency: str = "USD"


LIST_PRICES = Prices()


def from_batch(batch: dict) -> dict:
    """A Dataproc Batch's usage (the Batch as a dict, e.g. ``Batch.to_dict``); zeros while it
    runs or when it reported none."""
    used = (batch.get("runtime_info") or {}).get("approximate_usage") or {}
    return {
        "dcu_hours": round(float(used.get("milli_dcu_seconds") or 0) / 1000 / 3600, 6),
        "shuffle_gb_hours": round(float(used.get("shuffle_storage_gb_seconds") or 0) / 3600, 6),
    }


def local(wall_seconds: float, cpu_seconds: float, peak_memory_mb: float) -> dict:
    return {
        "wall_seconds": round(wall_seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1),
        "peak_memory_mb": round(peak_memory_mb),
    }


def total(usages: Iterable[dict]) -> dict:
    """The sum of several jobs' usage (peak memory: the largest)."""
    summed: dict = {}
    for used in usages:
        for key, value in used.items():
            if key == "peak_memory_mb":
                summed[key] = max(summed.get(key, 0), value)
            elif key in CLOUD or key in LOCAL:
                summed[key] = round(summed.get(key, 0) + value, 6)
    return summed


def cost(used: dict, prices: Prices = LIST_PRICES) -> float | None:
    """The estimated price of cloud usage; None for local usage, which has none."""
    if not any(key in used for key in CLOUD):
        return None
    shuffle_gb_hour = prices.shuffle_gb_month / HOURS_PER_MONTH
    return round(
        used.get("dcu_hours", 0) * prices.dcu_hour
        + used.get("shuffle_gb_hours", 0) * shuffle_gb_hour,
        4,
    )


def priced(used: dict, prices: Prices = LIST_PRICES) -> dict:
    """The usage with its estimated ``cost`` and ``currency`` (cloud usage only)."""
    price = cost(used, prices)
    return used if price is None else {**used, "cost": price, "currency": prices.currency}


def describe(used: dict | None) -> str:
    """One phrase a person reads: a priced usage's cost, or what the machine spent."""
    if not used:
        return "not measured"
    if "cost" in used:
        return f"{used['cost']:.4f} {used['currency']} ({used.get('dcu_hours', 0):.3f} DCU-hours)"
    if "wall_seconds" in used:
        return (
            f"{used['wall_seconds']:.0f} s wall, {used['cpu_seconds']:.0f} s CPU, "
            f"{used['peak_memory_mb']} MB peak"
        )
    return "not measured"
