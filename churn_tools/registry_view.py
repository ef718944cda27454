"""The registry as a person reads it: a table of versions, and their AUPR and cost over time."""

from __future__ import annotations

from churn_core import usage

COLUMNS = ("", "version", "registered", "AUPR", "vs champion (AUPR delta, interval)", "cost",
           "status")  # fmt: skip


def _versus(comparison: dict | None) -> str:
    if not comparison:
        return "no champion"
    if not comparison.get("comparable"):
        return f"not comparable with {comparison['champion']}"
    pr, champion = comparison["au_pr"], comparison["champion"]
    return f"{pr['delta']:+.4f} [{pr['lower']:+.4f}, {pr['upper']:+.4f}] vs {champion}"


def rows(doc: dict) -> list[tuple[str, ...]]:
    """One row per version, oldest first; ``*`` marks the champion (pure)."""
    return [
        (
            "*" if v["version"] == doc["champion"] else "",
            v["version"],
            v["registered_at"][:10],
            f"{v['metrics']['au_pr']:.4f}",
            _versus(v.get("comparison")),
            usage.describe(v.get("usage")),
            v["status"],
        )
        for v in doc["versions"]
    ]


def table(doc: dict) -> str:
    """The versions as aligned columns, and who the champion is."""
    lines = [COLUMNS, *rows(doc)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
            for line in lines]  # fmt: skip
    text.append(f"champion: {doc['champion'] or 'none yet'}")
    return "\n".join(text)


def plot(doc: dict, path: str) -> None:
    """AUPR and cost of each version in registration order, the champion marked, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    versions = doc["versions"]
    x = range(len(versions))
    spent = [v.get("usage") or {} for v in versions]
    priced = any("cost" in s for s in spent)
    costs = [s.get("cost", 0) if priced else s.get("cpu_seconds", 0) for s in spent]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(max(6, len(versions)), 6))
    top.plot(x, [v["metrics"]["au_pr"] for v in versions], "o-", color="tab:blue")
    top.set_ylabel("test AUPR")
    bottom.bar(x, costs, color="tab:orange")
    bottom.set_ylabel(f"cost ({spent[0].get('currency', '')})" if priced else "CPU seconds")
    for i, v in enumerate(versions):
        if v["version"] == doc["champion"]:
            for axis in (top, bottom):
                axis.axvline(i, color="tab:green", linestyle="--", label="champion")
    if doc["champion"]:
        top.legend(loc="lower right")
    bottom.set_xticks(list(x), [v["version"] for v in versions], rotation=30, ha="right")
    top.set_title("Model versions: quality against what each retrain spent")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
