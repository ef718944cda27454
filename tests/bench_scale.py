"""Scaling benchmark: ``make bench-scale``. How each job's time grows with its input.

Generated data (``churn_ml.sample_data``) at 10k, 100k and 1M rows, scoring also at 5M. Each
job runs as its own fresh process (``python spark_jobs/<job>.py``) on ``local[2]``, the way
a pipeline step runs, so the small sizes show the fixed cost of a job:
- preprocessing;
- training with the default forest (30 trees, maxDepth 10, maxBins 32);
- tuning with a small grid (``SMALL_GRID``, 3 folds);
- scoring, with the model trained on 100k rows.

Then trains once more at the size a fixed-plus-per-row fit of the last two training points
predicts for 10 minutes (rounded down to 500k rows), to measure the largest training set
this machine fits in that time.

Prints a table of seconds and rows/s and the slope of each segment (log10 of the time ratio
per 10x rows: 1.0 is linear, 0 is all fixed cost), writes ``results.json`` and a log-log
``scaling.png`` to ``--output``, and notes the machine's load before and after each run.
Takes about an hour on two cores; ``--sizes`` and ``--score-sizes`` run a part of it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JOBS = ("preprocess", "train", "tune", "score")
SIZES = (10_000, 100_000, 1_000_000)
SCORE_SIZES = (*SIZES, 5_000_000)
SCORING_MODEL_ROWS = 100_000
SMALL_GRID = {"max-depth": "5,10", "max-bins": "32", "num-trees": "10,20"}
FOLDS = 3
MASTER = "local[2]"
TEN_MINUTES = 600.0
PREPROCESS_10K_TARGET = 15.0  # seconds, a fresh process (issue 15)


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run_job(job: str, args: list[str], log: Path) -> float:
    """Wall seconds of one job in a fresh process; its output goes to ``log``."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_GATEWAY")},
        "CHURN_SPARK_MASTER": MASTER,
    }
    command = [sys.executable, str(REPO / "spark_jobs" / f"{job}.py"), *args]
    started = time.monotonic()
    with log.open("w") as out:
        done = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.monotonic() - started
    if done.returncode:
        tail = log.read_text().splitlines()[-15:]
        raise SystemExit(f"{job} failed (exit {done.returncode}), see {log}:\n" + "\n".join(tail))
    return seconds


def job_args(job: str, rows: int, work: Path, model_rows: int) -> list[str]:
    run = work / f"train-{rows}"
    lineage = ["--pipeline-id", f"scale-{rows}", "--dataset-uri", str(work / "warehouse")]
    if job == "preprocess":
        return [*lineage, "--input-uri", str(work / f"train-{rows}.csv")]
    if job == "train":
        return [*lineage, "--model-uri", str(run / "model"), "--metrics-uri", str(run / "metrics")]
    if job == "tune":
        grid = [a for name, values in SMALL_GRID.items() for a in (f"--{name}-grid", values)]
        return [
            *lineage,
            "--model-uri",
            str(work / f"tune-{rows}" / "model"),
            "--metrics-uri",
            str(work / f"tune-{rows}" / "metrics"),
            "--folds",
            str(FOLDS),
            *grid,
        ]
    model = work / f"train-{model_rows}" / "model"
    return [
        "--pipeline-id",
        f"scale-{rows}",
        "--dataset-uri",
        str(work / "warehouse"),
        "--input-uri",
        str(work / f"score-{rows}.csv"),
        "--model-uri",
        str(model),
        "--model-version",
        "bench",
    ]


def slopes(points: list[tuple[int, float]]) -> list[float]:
    """log10(time ratio) per 10x rows between consecutive sizes."""
    return [
        math.log10(t1 / t0) / math.log10(n1 / n0)
        for (n0, t0), (n1, t1) in itertools.pairwise(points)
    ]


def largest_under(seconds: float, points: list[tuple[int, float]]) -> int | None:
    """Rows a fixed cost plus a cost per row, fitted to the last two points, predicts in
    ``seconds``; rounded down to 500k rows (the probe then measures it)."""
    if len(points) < 2:
        return None
    (n0, t0), (n1, t1) = points[-2:]
    per_row = (t1 - t0) / (n1 - n0)
    if per_row <= 0:
        return None
    rows = n1 + (seconds - t1) / per_row
    return int(min(rows, 20_000_000) // 500_000 * 500_000) or None


def plot(results: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for job, runs in results.items():
        xs, ys = [r["rows"] for r in runs], [r["seconds"] for r in runs]
        ax.plot(xs, ys, marker="o", label=job)
    lo = min(r["rows"] for runs in results.values() for r in runs)
    hi = max(r["rows"] for runs in results.values() for r in runs)
    ax.plot([lo, hi], [TEN_MINUTES] * 2, color="grey", linestyle=":", label="10 minutes")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("input rows (generated)")
    ax.set_ylabel("wall seconds, fresh process, local[2]")
    ax.set_title("Job time against input size", fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def sizes(value: str) -> list[int]:
    return sorted(int(v) for v in value.split(","))


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--output", type=Path, default=REPO / "test-output" / "bench-scale")
    p.add_argument("--sizes", type=sizes, default=list(SIZES), help="training rows, e.g. 10000")
    p.add_argument("--score-sizes", type=sizes, default=list(SCORE_SIZES))
    p.add_argument(
        "--no-probe",
        dest="probe",
        action="store_false",
        help="skip training at the size the curve predicts for 10 minutes",
    )
    args = p.parse_args(argv)
    from churn_ml import sample_data

    work = args.output / "work"
    work.mkdir(parents=True, exist_ok=True)
    # Scoring uses the model trained on the size nearest SCORING_MODEL_ROWS.
    model_rows = min(args.sizes, key=lambda n: abs(math.log(n / SCORING_MODEL_ROWS)))
    results: dict[str, list[dict]] = {job: [] for job in JOBS}
    started = time.monotonic()
    print(f"load at start: {load()}", flush=True)

    def measure(job: str, rows: int) -> None:
        before = load()
        log = args.output / f"{job}-{rows}.log"
        seconds = run_job(job, job_args(job, rows, work, model_rows), log)
        record = {
            "rows": rows,
            "seconds": round(seconds, 1),
            "rows_per_s": round(rows / seconds),
            "load_before": before,
            "load_after": load(),
        }
        results[job].append(record)
        print(
            f"{job:10s} {rows:>9,d} rows {seconds:8.1f} s {rows / seconds:>10,.0f} rows/s"
            f"   load {before} -> {record['load_after']}",
            flush=True,
        )

    for rows in args.sizes:
        sample_data.write_csv(work / f"train-{rows}.csv", rows, seed=11)
        for job in ("preprocess", "train", "tune"):
            measure(job, rows)
    probe = largest_under(TEN_MINUTES, [(r["rows"], r["seconds"]) for r in results["train"]])
    if probe and args.probe:
        sample_data.write_csv(work / f"train-{probe}.csv", probe, seed=11)
        run_job("preprocess", job_args("preprocess", probe, work, model_rows), work / "probe.log")
        (work / f"train-{probe}.csv").unlink()
        measure("train", probe)
    for rows in args.score_sizes:
        csv = work / f"score-{rows}.csv"
        sample_data.write_csv(csv, rows, seed=12, with_label=False)
        measure("score", rows)
        csv.unlink()  # 5M rows are 0.7 GB
    print(f"load at end: {load()}; whole benchmark {time.monotonic() - started:.0f} s\n")
    print(f"{'job':10s} {'rows':>10s} {'seconds':>9s} {'rows/s':>10s} {'slope to next':>14s}")
    summary = {}
    for job, runs in results.items():
        job_slopes = slopes([(r["rows"], r["seconds"]) for r in runs])
        for r, slope in zip(runs, [*job_slopes, None], strict=True):
            shown = "" if slope is None else f"{slope:.2f}"
            print(
                f"{job:10s} {r['rows']:>10,d} {r['seconds']:>9.1f} {r['rows_per_s']:>10,d} "
                f"{shown:>14s}"
            )
        summary[job] = {"runs": runs, "slopes": [round(s, 2) for s in job_slopes]}
    summary["scoring_model_rows"] = model_rows
    small = next((r for r in results["preprocess"] if r["rows"] == 10_000), None)
    if small:
        verdict = "met" if small["seconds"] <= PREPROCESS_10K_TARGET else "not met"
        print(
            f"preprocessing 10k rows, fresh process: {small['seconds']:.1f} s "
            f"(target at most {PREPROCESS_10K_TARGET:.0f} s: {verdict})"
        )
    if probe and args.probe:
        took = results["train"][-1]["seconds"]
        verdict = "within" if took <= TEN_MINUTES else "over"
        print(f"training {probe:,d} rows (predicted for 10 minutes): {took:.0f} s, {verdict}")
        summary["ten_minute_probe"] = {"rows": probe, "seconds": took}
    plot(results, args.output / "scaling.png")
    (args.output / "results.json").write_text(json.dumps(summary, indent=2))
    print(f"\nplot: {args.output / 'scaling.png'}; figures: {args.output / 'results.json'}")
    return summary


if __name__ == "__main__":
    main()
