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
