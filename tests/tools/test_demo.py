"""The demo's summary lines: what a newcomer reads at the end of ``make demo``."""

from __future__ import annotations

from churn_tools.demo import failure_reason, render

SUMMARY = {
    "failed": [],
    "log": ".airflow/demo.log",
    "scoring": {
        "customers_in": 1250,
        "scored": 1248,
        "rejected": 2,
        "spent": "41 s wall, 60 s CPU, 1800 MB peak",
    },
    "drift": {
        "message": "drift warning against model v1 ...: look at monthly_charges 0.160 (warning)",
        "top_psi": {"monthly_charges": 0.16, "tenure": 0.031},
        "report": ".churn/metrics/customer-churn-model/batch-scoring/20261201/drift.html",
    },
}


def test_the_summary_prints_the_days_top_psis():
    lines = render(SUMMARY).splitlines()
    assert (
        "Scoring: 1250 customers in, 1248 scored, 2 rejected; spent 41 s wall, 60 s CPU, "
        "1800 MB peak"
    ) in lines
    start = lines.index(f"Drift: {SUMMARY['drift']['message']}")
    assert lines[start + 1 : start + 4] == [
        "  PSI  0.1600  monthly_charges",
        "  PSI  0.0310  tenure",
        f"  report: {SUMMARY['drift']['report']}",
    ]


def test_without_a_baseline_the_summary_says_so():
    drift = {"message": "drift not measured: the champion v1 has no training profile"}
    lines = render({**SUMMARY, "drift": drift}).splitlines()
    assert f"Drift: {drift['message']}" in lines
    assert not [line for line in lines if line.startswith("  PSI")]


def test_a_failure_names_the_bad_input_and_the_log():
    text = "Traceback ...\nchurn_ml: bad input: 3 rows ...\npipeline job x failed (log: /a/b.log)"
    assert failure_reason(text) == ("bad input: 3 rows ...", "/a/b.log")
    assert failure_reason("") == ("failed", None)


def test_the_summary_lists_the_notifications_the_demo_sent():
    notifications = {"sent": ["promotion: v1 is the champion", "drift: drift warning on ..."],
                     "file": ".churn/notifications.jsonl"}  # fmt: skip
    lines = render({**SUMMARY, "notifications": notifications}).splitlines()
    start = lines.index("Notifications (2): .churn/notifications.jsonl")
    assert lines[start + 1 : start + 3] == [f"  {sent}" for sent in notifications["sent"]]


def test_the_summary_gives_the_lineage_pictures_path():
    lines = render({**SUMMARY, "lineage": ".churn/lineage/20261201.png"}).splitlines()
    assert "Lineage: .churn/lineage/20261201.png" in lines


def test_the_demo_shows_each_pipeline_step_as_its_job_logs_it(tmp_path):
    from churn_airflow import local_jobs
    from churn_core import step_progress
    from churn_tools.demo import StepWatch

    class Console:
        def __init__(self):
            self.said: list[str] = []

        def say(self, text: str) -> None:
            self.said.append(text)

    earlier = tmp_path / local_jobs.PIPELINE / "churn-training-old-k-1" / local_jobs.LOG
    earlier.parent.mkdir(parents=True)
    earlier.write_text(step_progress.started("churn-preprocessing-old-k-1") + "\n")
    console = Console()
    with StepWatch(console, str(tmp_path)):
        log = tmp_path / local_jobs.PIPELINE / "churn-training-new-k-1" / local_jobs.LOG
        log.parent.mkdir()
        log.write_text(step_progress.started("churn-preprocessing-new-k-1") + "\n")
        with log.open("a") as f:
            f.write(step_progress.ended("churn-preprocessing-new-k-1", 21.6) + "\n")
    assert console.said == [
        "      · preprocessing started (churn-preprocessing-new-k-1)",
        "      · preprocessing done in 22 s",
    ]
