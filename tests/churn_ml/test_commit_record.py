"""The commit record on a filesystem: the newest attempt holds it; a commit waits for no one
and a takeover waits for a commit in progress. (On GCS: tests/plugins/test_gcs_emulator.py.)"""

from __future__ import annotations

import json
import threading
import time

import pytest

from churn_ml import commit_record


def held(record) -> dict:
    return json.loads(record.read_text())


def test_the_holder_commits_and_the_record_says_so(tmp_path):
    record = tmp_path / "run" / "commit.json"
    claim = commit_record.take(str(record), "abcde-1")
    assert held(record)["attempt"] == "abcde-1" and held(record)["state"] == "taken"
    with claim.committing():
        committed = True
    assert committed and held(record)["state"] == "committed"


def test_a_superseded_attempt_never_enters_its_commit(tmp_path):
    record = f"file://{tmp_path}/commit.json"
    first = commit_record.take(record, "abcde-1")
    commit_record.take(record, "abcde-2")
    entered = []
    with pytest.raises(commit_record.Superseded, match="took it over"), first.committing():
        entered.append(True)
    assert entered == [] and held(tmp_path / "commit.json")["attempt"] == "abcde-2"


def test_a_takeover_waits_for_the_commit_in_progress(tmp_path):
    record = str(tmp_path / "commit.json")
    claim = commit_record.take(record, "abcde-1")
    events = []
    with claim.committing():
        later = threading.Thread(
            target=lambda: events.append(commit_record.take(record, "abcde-2").attempt)
        )
        later.start()
        time.sleep(0.3)
        events.append("committed")
    later.join(5)
    assert events == ["committed", "abcde-2"]
    assert held(tmp_path / "commit.json")["attempt"] == "abcde-2"


def test_a_record_elsewhere_is_refused(tmp_path):
    with pytest.raises(ValueError, match="a gs:// object or a local file"):
        commit_record.take("hdfs://nn/commit.json", "abcde-1")
