"""Benchmarks: ``make bench``. Figures are printed side by side from one run.

1. Tuning: CrossValidator over the whole pipeline (parallelism 1) against ours, same split
   and reduced grid (maxDepth 5,10,15; 3 folds); times, ratio and both test AUPRs.
2. Tuning alone with the lab's default grid (27 points) and 5 folds.
3. Scoring 1M generated rows against two I/O floors: the job itself with the model swapped
   for constant columns, and a single read, clean and write of the cleaned rows.
   Then scoring with drift against scoring without it, alternated on the same 1M rows.
4. Metrics on a 1M-row prediction set (one bounded aggregation).
5. The training job on the reference data with the champion comparison (scoring the
   champion and the paired bootstrap) and without, each run a fresh process, alternating.
6. The scoring job on those 1M rows with its OpenLineage run events and without, each run a
   fresh spark-submit, alternating.
7. The whole local pipeline on the reference data with the default grid, per step.
8. The training job in a fresh spark-submit without and with the JVM class archive, alternating
   (``python -m tests.bench class_sharing`` runs only this one).
9. A newcomer's path (``python -m tests.bench newcomer [REV ...]``, not part of the whole run):
   ``git clone`` of each revision (default HEAD), then ``make venv`` and ``make demo`` timed
   apart, the revisions alternated; uv's cache is this machine's.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
import time
from pathlib import Path
from unittest import mock

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "data" / "customer_churn_train_data.csv"
DAY = dt.date(2026, 11, 29)
SCORE_CSV = "score.csv"  # the 1M scoring rows bench_scoring writes and bench_drift reuses


def timed(label: str, fn):
    started = time.monotonic()
    result = fn()
    seconds = time.monotonic() - started
    print(f"{label}: {seconds:.1f} s", flush=True)
    return result, seconds


def prepare_training(work: Path, source: Path) -> tuple[str, str]:
    import preprocess

    dataset = str(work / "warehouse")
    preprocess.main(
        ["--pipeline-id", "bench", "--input-uri", str(source), "--dataset-uri", dataset]
    )
    return dataset, "bench"


def bench_tuning_side_by_side(spark, dataset: str) -> dict:
    from pyspark.ml import Pipeline, PipelineModel
    from pyspark.ml.classification import RandomForestClassifier
    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.ml.tuning import CrossValidator, ParamGridBuilder

    from churn_ml import storage
    from churn_ml.evaluation import evaluate
    from churn_ml.model import (
        DEFAULT_SEED,
        FEATURES,
        LABEL_INDEX,
        churn_probability,
        feature_stages,
        fit,
        forest,
        split,
        with_label,
    )
    from churn_ml.tuning import Grid, best, cross_validate

    rows = storage.read_table(spark, f"{dataset}/training_data", {"pipeline_id": "bench"})
    train, test = split(with_label(rows), DEFAULT_SEED)
    train, test = train.cache(), test.cache()
    train.count()
    depths = (5, 10, 15)

    def straightforward():
        # The lab's way: a default forest at the end of the whole pipeline.
        rf = RandomForestClassifier(featuresCol=FEATURES, labelCol=LABEL_INDEX, seed=DEFAULT_SEED)
        pipeline = Pipeline(stages=[*feature_stages(), rf])
        grid = ParamGridBuilder().addGrid(rf.maxDepth, list(depths)).build()
        cv = CrossValidator(
            estimator=pipeline,
            estimatorParamMaps=grid,
            evaluator=BinaryClassificationEvaluator(metricName="areaUnderPR"),
            numFolds=3,
            parallelism=1,
            seed=DEFAULT_SEED,
        )
        stages = cv.fit(train).bestModel.stages
        return PipelineModel(stages=[*stages[:-1], stages[-1].copy()])  # without its summary

    def ours():
        features = Pipeline(stages=feature_stages()).fit(train)
        vectors = features.transform(train).select("customer_id", FEATURES, LABEL_INDEX).cache()
        grid = Grid(max_depth=depths, max_bins=(32,), num_trees=(20,))
        winner = best(cross_validate(vectors, grid, 3, DEFAULT_SEED, parallelism=6))
        model = PipelineModel(stages=[*features.stages, fit(forest(winner.params), vectors)])
        vectors.unpersist()
        return model

    def test_au_pr(model) -> float:
        return evaluate(churn_probability(model.transform(test)))["metrics"]["au_pr"]

    base_model, base_s = timed("tuning, CrossValidator over the whole pipeline", straightforward)
    our_model, our_s = timed("tuning, ours", ours)
    result = {
        "straightforward_s": round(base_s, 1),
        "ours_s": round(our_s, 1),
        "speedup": round(base_s / our_s, 1),
        "straightforward_test_au_pr": round(test_au_pr(base_model), 4),
        "ours_test_au_pr": round(test_au_pr(our_model), 4),
    }
    print(json.dumps(result), flush=True)
    return result


def bench_full_grid(work: Path, dataset: str) -> dict:
    import tune

    args = [
        "--pipeline-id",
        "bench",
        "--dataset-uri",
        dataset,
        "--folds",
        "5",
        "--model-uri",
        str(work / "tuned"),
        "--metrics-uri",
        str(work / "tuned-metrics"),
    ]
    doc, seconds = timed(
        "tuning, default 27-point grid x 5 folds (whole job)", lambda: tune.main(args)
    )
    return {
        "seconds": round(seconds, 1),
        "best": doc["params"],
        "test_au_pr": doc["metrics"]["au_pr"],
    }


def scoring_input(work: Path, dataset: str, rows: int) -> tuple[str, Path]:
    """A model trained on the reference data, and ``rows`` generated customers to score."""
    import train

    from churn_ml import sample_data

    model_uri = str(work / "model")
    train.main(
        [
            "--pipeline-id",
            "bench",
            "--dataset-uri",
            dataset,
            "--model-uri",
            model_uri,
            "--metrics-uri",
            str(work / "model-metrics"),
        ]
    )
    source = work / SCORE_CSV
    timed(
        f"generate {rows} scoring rows",
        lambda: sample_data.write_csv(source, rows, seed=5, with_label=False),
    )
    return model_uri, source


def bench_scoring(spark, work: Path, dataset: str, rows: int = 1_000_000) -> tuple[dict, str]:
    import score
    from pyspark.sql import functions as F

    from churn_ml import cleaning, customers, raw_csv, storage
    from churn_ml.model import CHURN_PROBABILITY

    model_uri, source = scoring_input(work, dataset, rows)

    def one_write_floor():
        parsed = cleaning.parse(raw_csv.read(spark, str(source), with_label=False))
        records = customers.one_per_customer(parsed)  # the job's cleaning: one row per customer
        out = cleaning.with_lineage(cleaning.clean(records), "floor", DAY)
        storage.write_table(out, str(work / "floor"), {"pipeline_id": "floor"})

    def args(pipeline_id: str) -> list[str]:
        return [
            "--pipeline-id",
            pipeline_id,
            "--input-uri",
            str(source),
            "--model-uri",
            model_uri,
            "--model-version",
            "bench",
            "--dataset-uri",
            dataset,
        ]

    def no_model(customers):
        return customers.withColumns({"prediction": F.lit(0), CHURN_PROBABILITY: F.lit(0.0)})

    def job_floor():
        with mock.patch.object(score, "load_scorer", lambda spark, uri, profile: (no_model, None)):
            score.main(args("floor"))

    # Every run happens twice and the faster counts: the first run of the floor pays for JVM
    # warm-up, the first run of the job for loading Spark ML and starting Python workers.
    floors = {"job_floor": job_floor, "one_write_floor": one_write_floor}
    runs = {name: [timed(f"I/O floor ({name})", fn)[1]] for name, fn in floors.items()}
    runs["job"] = [
        timed(f"scoring job (run {i})", lambda: score.main(args("bench")))[1] for i in (1, 2)
    ]
    for name, fn in floors.items():
        runs[name].append(timed(f"I/O floor again ({name})", fn)[1])
    score_s = min(runs["job"])
    result = {"rows": rows, "rows_per_s": round(rows / score_s)}
    for name, seconds in runs.items():
        result[f"{name}_runs_s"] = [round(s, 1) for s in seconds]
        if name != "job":
            result[f"ratio_to_{name}"] = round(score_s / min(seconds), 2)
    result["first_job_run_to_job_floor"] = round(runs["job"][0] / min(runs["job_floor"]), 2)
    print(json.dumps(result), flush=True)
    return result, model_uri


def bench_drift(spark, work: Path, dataset: str, model_uri: str) -> dict:
    """The scoring job with ``--drift-uri`` against the job without it, on the rows
    ``bench_scoring`` wrote, alternated; the fastest of three runs each counts."""
    import score

    def run(pipeline_id: str, *extra: str):
        return lambda: score.main([
            "--pipeline-id", pipeline_id, "--input-uri", str(work / SCORE_CSV),
            "--model-uri", model_uri, "--model-version", "bench", "--dataset-uri", dataset,
            *extra,
        ])  # fmt: skip

    runs = {"without_drift": [], "with_drift": []}
    for i in (1, 2, 3):
        runs["without_drift"].append(timed(f"scoring without drift (run {i})", run("plain"))[1])
        with_drift = run("drift", "--drift-uri", str(work / "drift"))
        runs["with_drift"].append(timed(f"scoring with drift (run {i})", with_drift)[1])
    report = json.loads((work / "drift" / "drift.json").read_text(encoding="utf-8"))
    result = {f"{name}_runs_s": [round(s, 1) for s in seconds] for name, seconds in runs.items()}
    result["ratio"] = round(min(runs["with_drift"]) / min(runs["without_drift"]), 3)
    result["rows_measured"] = report["rows"]
    print(json.dumps(result), flush=True)
    return result


def spark_submit() -> list[str]:
    """spark-submit with the local backend's Spark settings, as the local jobs run."""
    import sys

    from churn_core import spark_conf

    submit = [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[*]"]
    for key, value in sorted(spark_conf.local_properties().items()):
        submit += ["--conf", f"{key}={value}"]
    return submit


def bench_lineage(work: Path, dataset: str, model_uri: str, repeats: int = 3) -> dict:
    """The scoring job on the 1M rows ``bench_scoring`` wrote, with its OpenLineage run events
    (the local file transport) and without, as the local backend runs it: one spark-submit per
    run, alternating; medians and minima. The job's cost recording needs no bench: spark-submit's
    ``wait4`` reads its usage when it exits."""
    import statistics
    import subprocess

    from churn_core import lineage_conf

    events = [f"--conf={k}={v}" for k, v in lineage_conf.local_transport(str(work)).items()]

    def job(name: str, conf: list[str]) -> float:
        argv = [*spark_submit(), *conf, str(REPO / "spark_jobs" / "score.py"),
                "--pipeline-id", name, "--input-uri", str(work / SCORE_CSV),
                "--model-uri", model_uri, "--model-version", "bench",
                "--dataset-uri", dataset]  # fmt: skip
        started = time.monotonic()
        with (work / f"lineage-{name}.log").open("w") as log:
            subprocess.run(argv, check=True, stdout=log, stderr=subprocess.STDOUT)
        seconds = time.monotonic() - started
        print(f"scoring job, {name}: {seconds:.1f} s", flush=True)
        return seconds

    runs = {"without_lineage": [], "with_lineage": []}
    for i in range(repeats):
        runs["without_lineage"].append(job(f"plain-{i}", []))
        runs["with_lineage"].append(job(f"lineage-{i}", events))
    sent = (work / "lineage" / "events.jsonl").read_text().splitlines()
    result = {f"{name}_s": [round(s, 1) for s in seconds] for name, seconds in runs.items()}
    for how in (statistics.median, min):
        on, off = how(runs["with_lineage"]), how(runs["without_lineage"])
        result[f"extra_wall_by_{how.__name__}"] = round(on / off - 1, 3)
    result["events_written"] = len(sent)
    print(json.dumps(result), flush=True)
    return result


def bench_metrics(spark, work: Path, model_uri: str, rows: int = 1_000_000) -> dict:
    from pyspark.ml import PipelineModel

    from churn_ml import cleaning, raw_csv, sample_data
    from churn_ml.evaluation import evaluate
    from churn_ml.model import churn_probability, with_label

    source = work / "labelled.csv"
    sample_data.write_csv(source, rows, seed=9)
    customers = cleaning.clean(cleaning.parse(raw_csv.read(spark, str(source), with_label=True)))
    predictions = churn_probability(PipelineModel.load(model_uri).transform(with_label(customers)))
    report, seconds = timed(f"metrics on a {rows}-row test set", lambda: evaluate(predictions))
    result = {
        "rows": report["rows"],
        "seconds": round(seconds, 1),
        "curve_points": len(report["roc_curve"]["fpr"]),
        "au_pr": round(report["metrics"]["au_pr"], 4),
    }
    print(json.dumps(result), flush=True)
    return result


def training_job(
    work: Path, dataset: str, bench: str, name: str, *extra: str, submit: tuple[str, ...] = ()
) -> tuple[float, float]:
    """One run of the training job in a fresh spark-submit (``submit``: more of its options):
    its wall time, and the CPU time of the whole job (JVM and Python), which a busy machine
    disturbs less."""
    import resource
    import subprocess

    out = work / bench / name
    argv = [*spark_submit(), *submit, str(REPO / "spark_jobs" / "train.py"),
            "--pipeline-id", "bench", "--dataset-uri", dataset, "--model-uri", str(out / "model"),
            "--metrics-uri", str(out / "metrics"), *extra]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    with (work / f"{bench}-{name}.log").open("w") as log:
        subprocess.run(argv, check=True, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    print(f"training job, {bench} {name}: {seconds:.1f} s, CPU {cpu:.1f} s", flush=True)
    return seconds, cpu


def bench_class_sharing(work: Path, dataset: str, repeats: int = 3) -> dict:
    """The training job (a fresh spark-submit each run, as the local pipeline starts it)
    without and with the JVM class archive (``churn_core.class_sharing``), alternating; and
    what making the archive costs, once."""
    import statistics

    from churn_core import class_sharing

    submit, env = class_sharing.local_spark_submit()
    archive = work / "class-sharing" / "classes.jsa"
    started = time.monotonic()
    class_sharing.make(submit, env, archive, print)
    making = time.monotonic() - started
    shared = ("--driver-java-options", f"-XX:SharedArchiveFile={archive}")
    runs = {"without": [], "with": []}
    for i in range(repeats):
        runs["without"].append(training_job(work, dataset, "class-sharing", f"without-{i}"))
        runs["with"].append(
            training_job(work, dataset, "class-sharing", f"with-{i}", submit=shared)
        )

    def ratio(pick) -> float:
        with_, without = (statistics.median(pick(r) for r in runs[k]) for k in ("with", "without"))
        return round(with_ / without, 3)

    result = {
        "making_the_archive_s": round(making, 1),
        "without_s": [round(wall, 1) for wall, _ in runs["without"]],
        "with_s": [round(wall, 1) for wall, _ in runs["with"]],
        "without_cpu_s": [round(cpu, 1) for _, cpu in runs["without"]],
        "with_cpu_s": [round(cpu, 1) for _, cpu in runs["with"]],
        "wall_with_over_without_by_medians": ratio(lambda r: r[0]),
        "cpu_with_over_without_by_medians": ratio(lambda r: r[1]),
    }
    print(json.dumps(result), flush=True)
    return result


def bench_comparison(work: Path, dataset: str, repeats: int = 3) -> dict:
    """The training job with and without its champion, as the local pipeline runs it: one
    spark-submit (a fresh JVM) per run, off and on alternating so that both see the same
    load."""
    import statistics

    def job(name: str, *extra: str) -> tuple[float, float]:
        return training_job(work, dataset, "comparison", name, *extra)

    # The champion: a forest of another shape, trained on the same split.
    job("champion", "--num-trees", "20", "--max-depth", "8")
    model = str(work / "comparison" / "champion" / "model")
    champion = ["--champion-version", "bench-champion", "--champion-seed", "42",
                "--champion-model-uri", model]  # fmt: skip
    runs = {"off": [], "on": []}
    for i in range(repeats):
        runs["off"].append(job(f"off-{i}"))
        runs["on"].append(job(f"on-{i}", *champion))
    summary = json.loads((work / "comparison" / "on-0" / "metrics" / "metrics.json").read_text())

    def extra(pick, how) -> float:
        on, off = ([pick(r) for r in runs[k]] for k in ("on", "off"))
        return round(how(on) / how(off) - 1, 3)

    result = {
        "off_s": [round(wall, 1) for wall, _ in runs["off"]],
        "on_s": [round(wall, 1) for wall, _ in runs["on"]],
        "off_cpu_s": [round(cpu, 1) for _, cpu in runs["off"]],
        "on_cpu_s": [round(cpu, 1) for _, cpu in runs["on"]],
        "extra_wall_by_medians": extra(lambda r: r[0], statistics.median),
        "extra_wall_by_minima": extra(lambda r: r[0], min),
        "extra_cpu_by_medians": extra(lambda r: r[1], statistics.median),
        "rows": summary["comparison"]["rows"],
        "replicates": summary["comparison"]["replicates"],
        "au_pr": summary["comparison"]["au_pr"],
    }
    print(json.dumps(result), flush=True)
    return result


def bench_local_pipeline(work: Path) -> dict:
    from pipeline.run_local import run

    summary, seconds = timed(
        "whole local pipeline, reference data, default grid",
        lambda: run(work / "pipeline-root", "bench", DAY, training_data_uri=str(REFERENCE)),
    )
    return {
        "seconds": round(seconds, 1),
        "steps": {batch: spent["wall_seconds"] for batch, spent in summary["usage"].items()},
        "tuning_ran": summary["tuning_ran"],
    }


def bench_newcomer(revisions: list[str], repeats: int = 2) -> dict:
    import subprocess

    times = {rev: [] for rev in revisions}
    for _ in range(repeats):
        for rev in revisions:
            with tempfile.TemporaryDirectory(prefix="churn-newcomer-") as scratch:
                clone = Path(scratch) / "clone"
                started = time.monotonic()
                subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
                subprocess.run(["git", "-C", str(clone), "checkout", "-q", rev], check=True)
                steps = {}
                for target in ("venv", "demo"):
                    begun = time.monotonic()
                    subprocess.run(["make", "-s", target], cwd=clone, check=True,
                                   stdout=subprocess.DEVNULL)  # fmt: skip
                    steps[target] = round(time.monotonic() - begun, 1)
                steps["clone_to_summary"] = round(time.monotonic() - started, 1)
                print(f"newcomer {rev}: {steps}", flush=True)
                times[rev].append(steps)
    return times


def main(argv: list[str] | None = None) -> None:
    """Every benchmark; ``python -m tests.bench comparison`` (or ``lineage``) runs only that
    one."""
    import sys

    logging.basicConfig(level=logging.WARNING)
    from churn_ml.session import build_session

    only = sys.argv[1:] if argv is None else argv
    if only[:1] == ["newcomer"]:
        print(json.dumps(bench_newcomer(only[1:] or ["HEAD"]), indent=2))
        return
    if not REFERENCE.exists():
        raise SystemExit(f"the benchmarks use the reference data at {REFERENCE}")
    spark = build_session("churn-bench")
    results = {}
    with tempfile.TemporaryDirectory(prefix="churn-bench-") as scratch:
        work = Path(scratch)
        dataset, _ = prepare_training(work, REFERENCE)
        if only == ["comparison"]:
            spark.stop()
            print(json.dumps(bench_comparison(work, dataset), indent=2))
            return
        if only == ["class_sharing"]:
            spark.stop()
            print(json.dumps(bench_class_sharing(work, dataset), indent=2))
            return
        if only == ["lineage"]:
            model_uri, _ = scoring_input(work, dataset, 1_000_000)
            spark.stop()
            print(json.dumps(bench_lineage(work, dataset, model_uri), indent=2))
            return
        results["tuning_side_by_side"] = bench_tuning_side_by_side(spark, dataset)
        results["tuning_full_grid"] = bench_full_grid(work, dataset)
        results["scoring"], model_uri = bench_scoring(spark, work, dataset)
        results["drift"] = bench_drift(spark, work, dataset, model_uri)
        results["metrics"] = bench_metrics(spark, work, model_uri)
        spark.stop()
        results["comparison"] = bench_comparison(work, dataset)
        results["class_sharing"] = bench_class_sharing(work, dataset)
        results["lineage"] = bench_lineage(work, dataset, model_uri)
        results["local_pipeline"] = bench_local_pipeline(work)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
