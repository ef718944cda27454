"""The pipeline steps' marked log lines, and reading only what a log gained since last time."""

from __future__ import annotations

from churn_core import step_progress

BATCH = "churn-preprocessing-20261129-k7f2q-1"


def test_a_step_is_named_from_its_batch_id():
    assert step_progress.started(BATCH) == f"churn-step: preprocessing started ({BATCH})"
    assert step_progress.ended(BATCH, 22.4) == "churn-step: preprocessing done in 22 s"
    assert step_progress.ended(BATCH, 3.0, failed=True) == "churn-step: preprocessing failed in 3 s"


def test_the_reader_returns_each_step_line_once_and_waits_for_a_whole_line(tmp_path):
    log = tmp_path / "driver.log"
    reader = step_progress.Reader(log)
    assert reader.new() == []  # no log yet
    log.write_text(f"spark says hello\n    {step_progress.started(BATCH)}\nchurn-st")
    assert reader.new() == [f"preprocessing started ({BATCH})"]
    assert reader.new() == []
    with log.open("a") as f:
        f.write("ep: preprocessing done in 22 s\n")
        f.write(step_progress.started("churn-training-x-y-1") + "\n")
    assert reader.new() == [
        "preprocessing done in 22 s",
        "training started (churn-training-x-y-1)",
    ]
