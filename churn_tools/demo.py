"""The main job on the embedded default: both DAGs end to end with ``dag.test()``.

Seeds sample data for a day, runs the training DAG then the scoring DAG on a project-local
AIRFLOW_HOME (SQLite), shows one line per task as it starts and ends, and prints a summary.
Airflow's, kfp's and Spark's own output goes to a log file whose path it prints. ``make demo``
(or ``churn demo``) runs it; ``--json`` prints the summary as JSON instead.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
import threading
import time
from pathlib import Path

import pluggy

from churn_airflow.settings import DEADLINE_OFF
from churn_core import lineage_conf, step_progress
from churn_core.pipeline_params import local_root
from churn_ml import cli
from churn_tools import REPO, airflow_setup, lineage

DAGS = (("customer_churn_training", "training"), ("customer_churn_batch_scoring", "scoring"))
BAD_INPUT = re.compile(r"bad input: .*")
JOB_LOG = re.compile(r"\(log: (\S+)\)")
# Airflow's own listener marker (``airflow.listeners.hookimpl``), without importing Airflow
# before the demo has configured it.
hookimpl = pluggy.HookimplMarker("airflow")


def airflow_env(root: Path) -> dict[str, str]:
    """A project-local Airflow: SQLite home under .airflow, this repo's DAGs and plugins."""
    return {
        "AIRFLOW_HOME": os.environ.get("AIRFLOW_HOME", str(REPO / ".airflow")),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "CHURN_BACKEND": "local",
        "CHURN_ROOT": str(root),
        "AIRFLOW__OPENLINEAGE__TRANSPORT": lineage_conf.airflow_transport(str(root)),
        # dag.test() cannot finish a DAG with a deadline (apache/airflow#73428), and without a
        # scheduler nothing would watch one
        **{f"CHURN_{dag}_DEADLINE": DEADLINE_OFF for dag in ("TRAINING", "SCORING")},
    }


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_day(parser, "--date")
    parser.add_argument("--rows", type=int, default=20_000, help="training rows to generate")
    parser.add_argument("--grid", default="small", choices=["small", "default", "large"])
    parser.add_argument("--root", type=Path, default=local_root())
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    env = airflow_env(args.root.resolve())
    if os.environ.get("AIRFLOW_HOME") != env["AIRFLOW_HOME"] or "CHURN_ROOT" not in os.environ:
        # Airflow reads its configuration on import: re-run in the configured environment.
        Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
        os.execve(
            sys.executable,
            [sys.executable, "-m", "churn_tools.demo", *(sys.argv[1:] if argv is None else argv)],
            {**os.environ, **env},
        )
    log_path = Path(env["AIRFLOW_HOME"]) / "demo.log"
    with Console(log_path) as console:
        console.say(f"Full Airflow, kfp and Spark output: {log_path}")
        airflow_setup.setup(os.environ.copy())
        summary = run(args, console)
        console.say(json.dumps(summary, indent=2) if args.json else render(summary))
        if summary["failed"]:
            raise SystemExit(1)


class Console:
    """This process's output goes to the log file, child processes' too (the file descriptors
    are redirected); ``say`` writes to the terminal the demo started on."""

    def __init__(self, log_path: Path):
        self.log_path = log_path

    def __enter__(self) -> Console:
        sys.stdout.flush(), sys.stderr.flush()
        self.saved = (os.dup(1), os.dup(2))
        self.terminal = os.fdopen(os.dup(1), "w", buffering=1)
        log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1), os.dup2(log, 2)
        os.close(log)
        return self

    def say(self, text: str) -> None:
        print(text, file=self.terminal, flush=True)

    def __exit__(self, *exc) -> None:
        sys.stdout.flush(), sys.stderr.flush()
        for fd, saved in zip((1, 2), self.saved, strict=True):
            os.dup2(saved, fd)
            os.close(saved)
        self.terminal.close()


class Progress:
    """An Airflow listener: one line per task as it starts and as it ends (``dag.test()`` runs
    the tasks in this process, so the task runner calls it here)."""

    def __init__(self, console: Console, label: str):
        self.console, self.label, self.started = console, label, {}
        self.failures: list[dict] = []

    def _line(self, mark: str, task_id: str, detail: str = "") -> None:
        elapsed = time.monotonic() - self.started.get(task_id, time.monotonic())
        seconds = f"{elapsed:6.1f} s" if task_id in self.started else " " * 8
        self.console.say(f"  {mark} {self.label:<8} {task_id:<24} {seconds} {detail}".rstrip())

    @hookimpl
    def on_task_instance_running(self, previous_state, task_instance):
        if task_instance.task_id not in self.started:
            self._line("…", task_instance.task_id)
            self.started[task_instance.task_id] = time.monotonic()

    @hookimpl
    def on_task_instance_success(self, previous_state, task_instance):
        self._line("✓", task_instance.task_id)

    @hookimpl
    def on_task_instance_skipped(self, previous_state, task_instance):
        self._line("-", task_instance.task_id, "skipped")

    @hookimpl
    def on_task_instance_failed(self, previous_state, task_instance, error):
        reason, job_log = failure_reason(str(error))
        self._line("✗", task_instance.task_id, reason)
        self.failures.append({"task": task_instance.task_id, "reason": reason, "log": job_log})


class StepWatch:
    """Prints each pipeline step as it starts and ends, from the marked lines of the local
    pipeline jobs' logs (``churn_core.step_progress``), while the DAGs run."""

    def __init__(self, console: Console, root: str):
        from churn_airflow import local_jobs

        self.console, self.logs = console, Path(root) / local_jobs.PIPELINE
        self.log_name = local_jobs.LOG
        self.earlier = {p.name for p in self.logs.glob("*")}
        self.readers: dict[Path, step_progress.Reader] = {}
        self.done, self.thread = threading.Event(), threading.Thread(target=self._watch)

    def _poll(self) -> None:
        for log in sorted(self.logs.glob(f"*/{self.log_name}")):
            if log.parent.name not in self.earlier:
                for line in self.readers.setdefault(log, step_progress.Reader(log)).new():
                    self.console.say(f"      · {line}")

    def _watch(self) -> None:
        while not self.done.wait(1.0):
            self._poll()

    def __enter__(self) -> StepWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()
        self._poll()


def failure_reason(text: str) -> tuple[str, str | None]:
    """One line that says what went wrong (a job's 'bad input: ...' when it has one), and the
    job's own log when the error names it."""
    bad = BAD_INPUT.findall(text)
    reason = bad[-1] if bad else text.strip().splitlines()[0] if text.strip() else "failed"
    log = JOB_LOG.search(text)
    return reason[:300], log.group(1) if log else None


def run(args, console: Console) -> dict:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.listener import get_listener_manager

    from churn_airflow import notify, settings
    from churn_ml import sample_data

    env = settings.environment()
    sent_before = len(notify.read_local())
    sample_data.write_daily_partitions(env.training_data_root, [args.day], args.rows)
    sample_data.write_daily_partitions(
        env.scoring_data_root, [args.day], args.rows // 4, with_label=False
    )
    console.say(f"Sample data for {args.day}: {args.rows} training, {args.rows // 4} scoring rows")
    bag = DagBag(str(REPO / "dags"))
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    when = dt.datetime.combine(args.day, dt.time(), tzinfo=dt.UTC)
    conf = {"customer_churn_training": {"grid": args.grid, "folds": 3}}
    listeners = get_listener_manager()
    dag_runs, failed = {}, []
    for dag_id, label in DAGS:
        progress = Progress(console, label)
        listeners.add_listener(progress)
        started = time.monotonic()
        with StepWatch(console, env.artifact_root):
            dag_run = bag.get_dag(dag_id).test(logical_date=when, run_conf=conf.get(dag_id, {}))
        listeners.pm.unregister(progress)
        console.say(f"  {label} run {dag_run.state} in {time.monotonic() - started:.0f} s")
        dag_runs[label] = dag_run
        if dag_run.state != "success":
            failed = progress.failures or [{"task": dag_id, "reason": "failed", "log": None}]
            break
    summary = summarize(env, dag_runs, failed, console.log_path)
    summary["notifications"] = {
        "sent": [f"{m['kind']}: {m['title']}" for m in notify.read_local()[sent_before:]],
        "file": str(notify.local_file()),
    }
    return summary


def summarize(env, dag_runs: dict, failed: list[dict], log_path: Path) -> dict:
    from churn_airflow import drift_watch, run_ids, scoring
    from churn_core import documents, layout, registry, run_records, stages, usage

    summary = {"failed": failed, "log": str(log_path)}
    training = dag_runs.get("training")
    if training is None or training.state != "success":
        return summary
    run = run_ids.identify(
        training.run_id, training.run_type, training.logical_date, training.run_after
    )
    doc = registry.store(env.artifact_root).read()
    models = [v for v in doc["versions"] if v["pipeline_id"] == run.pipeline_id]
    attempt = models[-1]["attempt"]
    uri = layout.metrics_file(env.artifact_root, stages.TUNING, run.pipeline_id, attempt)
    record = documents.read(uri)
    tuned = run_records.model_metrics(record, uri)
    versions = {m["version"] for m in models}
    decision = next((h for h in reversed(doc["history"]) if h["version"] in versions), None)
    reports = [
        Path(layout.report_file(env.artifact_root, stage, run.pipeline_id, attempt))
        for stage in stages.MODELS
    ]
    summary.update(
        pipeline_id=run.pipeline_id,
        models=[
            {
                "version": v["version"],
                "test_au_pr": round(v["metrics"]["au_pr"], 4),
                "status": v["status"],
                "spent": usage.describe(v.get("usage")),
            }
            for v in models
        ],
        champion=doc["champion"],
        why=decision["reason"] if decision else "this run's models were not promoted",
        tuning=f"ran: best {tuned.params}" if tuned else record["reason"],
        reports=[str(r) for r in reports if r.exists()],
        registry=registry.registry_uri(env.artifact_root),
    )
    stats = scoring.read_stats(env, run.pipeline_id)
    if stats:
        counts = stats.counts()
        summary["scoring"] = {k: counts[k] for k in ("customers_in", "scored", "rejected")}
        summary["scoring"]["spent"] = usage.describe(stats.usage)
        report, html = drift_watch.read_report(env.artifact_root, run.pipeline_id)
        summary["drift"] = drift_watch.summary(report, html)
        summary["drift"]["message"] = drift_watch.message(report)
    try:
        summary["lineage"] = str(lineage.picture(Path(env.artifact_root), run.pipeline_id)[1])
    except (FileNotFoundError, LookupError) as missing:
        summary["lineage"] = f"none drawn: {missing}"
    return summary


def render(summary: dict) -> str:
    """The summary as a few aligned lines a person reads at a glance."""
    lines = [""]
    for failure in summary["failed"]:
        lines.append(f"FAILED {failure['task']}: {failure['reason']}")
        lines.append(f"  log: {failure['log'] or summary['log']}")
    if "models" in summary:
        lines.append(f"Run {summary['pipeline_id']}")
        width = max(len(m["version"]) for m in summary["models"])
        lines.append(f"  {'model version':<{width}}  test AUPR  status")
        for m in summary["models"]:
            lines.append(f"  {m['version']:<{width}}  {m['test_au_pr']:9.4f}  {m['status']}")
        lines.append(f"  the retrain spent: {summary['models'][-1]['spent']}")
        lines.append(f"Champion: {summary['champion']}")
        lines.append(f"  why: {summary['why']}")
        lines.append(f"Tuning: {summary['tuning']}")
    if "scoring" in summary:
        s = summary["scoring"]
        lines.append(
            f"Scoring: {s['customers_in']} customers in, {s['scored']} scored, "
            f"{s['rejected']} rejected; spent {s['spent']}"
        )
    if "drift" in summary:
        drift = summary["drift"]
        lines.append(f"Drift: {drift['message']}")
        for feature, psi in drift.get("top_psi", {}).items():
            lines.append(f"  PSI {psi:7.4f}  {feature}")
        if drift.get("report"):
            lines.append(f"  report: {drift['report']}")
    for report in summary.get("reports", []):
        lines.append(f"Report: {report}")
    if "lineage" in summary:
        lines.append(f"Lineage: {summary['lineage']}")
    if "registry" in summary:
        lines.append(f"Registry: {summary['registry']}")
    if notifications := summary.get("notifications"):
        lines.append(f"Notifications ({len(notifications['sent'])}): {notifications['file']}")
        lines.extend(f"  {sent}" for sent in notifications["sent"])
    lines.append(f"Log: {summary['log']}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
