"""The model registry: promotion decisions, the two stores and the rollback CLI."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from churn_airflow import registry
from churn_airflow.registry import (
    BELOW_THRESHOLD,
    CANDIDATE,
    CHAMPION,
    RETIRED,
    Candidate,
    LocalStore,
    champion,
    empty,
    promote,
    set_champion,
)
from churn_ml.layout import TRAINING, TUNING

NOW = "2026-11-29T03:00:00+00:00"
LATER = "2026-11-30T03:00:00+00:00"
THRESHOLD = 0.5


def candidate(
    pid: str, au_pr: float, operation: str = TRAINING, attempt: str = "abcde-1"
) -> Candidate:
    return Candidate(
        pipeline_id=pid,
        operation=operation,
        attempt=attempt,
        model_uri=f"/root/models/customer-churn-model/{operation}/{pid}/{attempt}",
        metrics={"au_pr": au_pr, "au_roc": 0.8},
    )


def statuses(doc: dict) -> dict[str, str]:
    return {v["version"]: v["status"] for v in doc["versions"]}


def first_run(au_pr: float = 0.7) -> dict:
    doc, _ = promote(empty(), [candidate("20261129", au_pr)], THRESHOLD, NOW)
    return doc


# --- decisions -------------------------------------------------------------------------------


def test_first_model_above_threshold_becomes_champion():
    doc, decision = promote(empty(), [candidate("20261129", 0.7)], THRESHOLD, NOW)
    assert decision == {
        "promoted": True,
        "version": "20261129-training-abcde-1",
        "champion": "20261129-training-abcde-1",
        "reason": "test AUPR 0.7000 passes 0.5 and beats no champion",
        "at": NOW,
    }
    assert doc["champion"] == "20261129-training-abcde-1"
    assert doc["model"] == "customer-churn-model"
    assert doc["versions"] == [
        {
            "version": "20261129-training-abcde-1",
            "pipeline_id": "20261129",
            "operation": "training",
            "attempt": "abcde-1",
            "model_uri": "/root/models/customer-churn-model/training/20261129/abcde-1",
            "metrics": {"au_pr": 0.7, "au_roc": 0.8},
            "registered_at": NOW,
            "status": CHAMPION,
        }
    ]
    assert doc["history"] == [decision]
    assert champion(doc)["version"] == "20261129-training-abcde-1"


def test_exactly_the_threshold_is_enough():
    _, decision = promote(empty(), [candidate("20261129", 0.5)], THRESHOLD, NOW)
    assert decision["promoted"] is True


def test_below_threshold_is_registered_but_not_promoted():
    doc, decision = promote(empty(), [candidate("20261129", 0.42)], THRESHOLD, NOW)
    assert decision["promoted"] is False
    assert decision["champion"] is None
    assert decision["reason"] == "best test AUPR 0.4200 is below the threshold 0.5"
    assert doc["champion"] is None
    assert statuses(doc) == {"20261129-training-abcde-1": BELOW_THRESHOLD}
    assert doc["history"] == []  # only promotions are history
    with pytest.raises(LookupError):
        champion(doc)


def test_a_worse_run_does_not_demote_the_champion():
    doc, decision = promote(first_run(0.7), [candidate("20261130", 0.6)], THRESHOLD, LATER)
    assert decision["promoted"] is False
    assert decision["version"] == "20261130-training-abcde-1"
    assert decision["champion"] == "20261129-training-abcde-1"
    assert "champion 20261129-training-abcde-1" in decision["reason"]
    assert decision["reason"] == (
        "best test AUPR 0.6000 does not beat champion 20261129-training-abcde-1 (0.7000)"
    )
    assert doc["champion"] == "20261129-training-abcde-1"
    assert statuses(doc) == {
        "20261129-training-abcde-1": CHAMPION,
        "20261130-training-abcde-1": CANDIDATE,
    }
    assert len(doc["history"]) == 1


def test_an_equal_run_does_not_demote_the_champion():
    doc, decision = promote(first_run(0.7), [candidate("20261130", 0.7)], THRESHOLD, LATER)
    assert decision["promoted"] is False
    assert doc["champion"] == "20261129-training-abcde-1"


def test_a_better_run_takes_over_and_the_old_champion_retires():
    doc, decision = promote(first_run(0.7), [candidate("20261130", 0.75)], THRESHOLD, LATER)
    assert decision["promoted"] is True
    assert (
        decision["reason"]
        == "test AUPR 0.7500 passes 0.5 and beats 20261129-training-abcde-1 (0.7000)"
    )
    assert doc["champion"] == "20261130-training-abcde-1"
    assert statuses(doc) == {
        "20261129-training-abcde-1": RETIRED,
        "20261130-training-abcde-1": CHAMPION,
    }
    assert [h["version"] for h in doc["history"]] == [
        "20261129-training-abcde-1",
        "20261130-training-abcde-1",
    ]


def test_promote_does_not_change_the_document_it_is_given():
    before = first_run(0.7)
    snapshot = copy.deepcopy(before)
    promote(before, [candidate("20261130", 0.9)], THRESHOLD, LATER)
    assert before == snapshot


def test_rerunning_a_day_adds_versions_and_leaves_the_champion_alone():
    """A new attempt of the champion's day registers new versions beside it: its files and
    entry stay as they were, and it is the baseline the new attempt must beat."""
    doc = first_run(0.8)
    before = registry.find(doc, "20261129-training-abcde-1")
    doc, decision = promote(doc, [candidate("20261129", 0.6, attempt="abcde-2")], THRESHOLD, LATER)
    assert decision["promoted"] is False
    assert decision["reason"] == (
        "best test AUPR 0.6000 does not beat champion 20261129-training-abcde-1 (0.8000)"
    )
    assert doc["champion"] == "20261129-training-abcde-1"
    assert registry.find(doc, "20261129-training-abcde-1") == before
    assert statuses(doc) == {
        "20261129-training-abcde-1": CHAMPION,
        "20261129-training-abcde-2": CANDIDATE,
    }


def test_a_better_attempt_of_the_same_day_takes_over():
    doc, decision = promote(
        first_run(0.7), [candidate("20261129", 0.75, attempt="abcde-2")], THRESHOLD, LATER
    )
    assert decision["promoted"] is True
    assert statuses(doc) == {
        "20261129-training-abcde-1": RETIRED,
        "20261129-training-abcde-2": CHAMPION,
    }


def test_registering_the_same_attempt_again_replaces_its_entries():
    """promote_champion cleared and run again: the same versions, no duplicates."""
    doc = first_run(0.7)
    again, decision = promote(doc, [candidate("20261129", 0.7)], THRESHOLD, LATER)
    assert [v["version"] for v in again["versions"]] == ["20261129-training-abcde-1"]
    assert again["champion"] == "20261129-training-abcde-1"
    assert registry.find(again, "20261129-training-abcde-1")["registered_at"] == LATER
    assert decision["promoted"] is True


def test_best_of_run_picks_tuning_when_it_is_better():
    doc, decision = promote(
        empty(), [candidate("20261129", 0.70), candidate("20261129", 0.74, TUNING)], THRESHOLD, NOW
    )
    assert decision["version"] == "20261129-hyperparameter-tuning-abcde-1"
    assert doc["champion"] == "20261129-hyperparameter-tuning-abcde-1"
    assert statuses(doc) == {
        "20261129-training-abcde-1": CANDIDATE,
        "20261129-hyperparameter-tuning-abcde-1": CHAMPION,
    }


def test_best_of_run_prefers_training_on_a_tie():
    _, decision = promote(
        empty(), [candidate("20261129", 0.7, TUNING), candidate("20261129", 0.7)], THRESHOLD, NOW
    )
    assert decision["version"] == "20261129-training-abcde-1"


def test_candidates_of_a_run_below_threshold_are_marked_one_by_one():
    doc, decision = promote(
        empty(), [candidate("20261129", 0.45), candidate("20261129", 0.52, TUNING)], THRESHOLD, NOW
    )
    assert decision["promoted"] is True
    assert statuses(doc) == {
        "20261129-training-abcde-1": BELOW_THRESHOLD,
        "20261129-hyperparameter-tuning-abcde-1": CHAMPION,
    }


def test_a_run_without_models_is_an_error():
    with pytest.raises(ValueError, match="at least one model"):
        promote(empty(), [], THRESHOLD, NOW)


def test_candidate_from_metrics_document():
    c = Candidate.from_metrics(
        {
            "pipeline_id": "20261129",
            "pipeline_execution_dt": "2026-11-29",
            "operation": TUNING,
            "model_uri": "gs://m/models/x",
            "metrics": {"au_pr": "0.61"},
            "feature_importances": [],
        },
        "abcde-1",
    )
    assert (c.version, c.model_uri, c.au_pr) == (
        "20261129-hyperparameter-tuning-abcde-1",
        "gs://m/models/x",
        0.61,
    )


# --- manual promotion / rollback --------------------------------------------------------------


def test_set_champion_rolls_back():
    doc, _ = promote(first_run(0.7), [candidate("20261130", 0.75)], THRESHOLD, LATER)
    rolled = set_champion(doc, "20261129-training-abcde-1", "2026-12-01T00:00:00+00:00")
    assert rolled["champion"] == "20261129-training-abcde-1"
    assert statuses(rolled) == {
        "20261129-training-abcde-1": CHAMPION,
        "20261130-training-abcde-1": RETIRED,
    }
    assert rolled["history"][-1] == {
        "promoted": True,
        "version": "20261129-training-abcde-1",
        "champion": "20261129-training-abcde-1",
        "reason": "manual",
        "at": "2026-12-01T00:00:00+00:00",
    }
    assert len(rolled["history"]) == 3
    assert champion(rolled)["model_uri"] == (
        "/root/models/customer-churn-model/training/20261129/abcde-1"
    )
    assert doc["champion"] == "20261130-training-abcde-1"  # the input is left alone


def test_set_champion_can_promote_a_below_threshold_version():
    doc, _ = promote(empty(), [candidate("20261129", 0.3)], THRESHOLD, NOW)
    assert (
        set_champion(doc, "20261129-training-abcde-1", NOW)["champion"]
        == "20261129-training-abcde-1"
    )


def test_set_champion_unknown_version():
    with pytest.raises(ValueError, match="not registered") as err:
        set_champion(first_run(), "20990101-training-abcde-1", NOW)
    assert "'20990101-training-abcde-1'" in str(err.value)
    assert "['20261129-training-abcde-1']" in str(err.value)


def test_champion_of_an_empty_registry_explains_what_to_do():
    with pytest.raises(LookupError, match="no champion yet: run the training DAG first"):
        champion(empty())


def test_registry_uri():
    assert (
        registry.registry_uri("gs://model-b/") == "gs://model-b/registry/customer-churn-model.json"
    )
    assert registry.registry_uri("/data/root") == "/data/root/registry/customer-churn-model.json"


def test_store_of_a_local_root(tmp_path):
    store = registry.store(str(tmp_path))
    assert isinstance(store, LocalStore)
    assert store.path == str(tmp_path / "registry" / "customer-churn-model.json")
    assert LocalStore(f"file://{tmp_path}/r.json").path == f"{tmp_path}/r.json"


# --- LocalStore --------------------------------------------------------------------------------


def promote_change(pid: str, au_pr: float):
    return lambda doc: promote(doc, [candidate(pid, au_pr)], THRESHOLD, NOW)


def test_local_read_of_a_missing_file_is_empty(tmp_path):
    assert LocalStore(str(tmp_path / "none" / "r.json")).read() == empty()


def test_local_update_replaces_the_file_atomically(tmp_path):
    path = tmp_path / "registry" / "customer-churn-model.json"
    store = LocalStore(str(path))
    decision = store.update(promote_change("20261129", 0.7))
    assert decision["promoted"] is True
    first_inode = path.stat().st_ino
    assert json.loads(path.read_text())["champion"] == "20261129-training-abcde-1"

    store.update(promote_change("20261130", 0.8))
    assert path.stat().st_ino != first_inode  # a new file renamed over the old one
    assert store.read()["champion"] == "20261130-training-abcde-1"
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "customer-churn-model.json",
        "customer-churn-model.json.lock",
    ]


def test_local_update_that_fails_keeps_the_old_document(tmp_path):
    path = tmp_path / "r.json"
    store = LocalStore(str(path))
    store.update(promote_change("20261129", 0.7))
    before = path.read_text()

    def change(doc):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        store.update(change)
    with pytest.raises(TypeError):  # not JSON: fails half-way through writing
        store.update(lambda doc: ({**doc, "champion": object()}, None))
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.json.lock"]


def test_local_update_returns_the_change_result(tmp_path):
    store = LocalStore(str(tmp_path / "r.json"))
    assert store.update(lambda doc: (doc, "result")) == "result"


def slow_promote_change(pid: str, au_pr: float):
    """A read-modify-write slow enough that unsynchronised writers would overwrite each other."""
    import time

    def change(doc):
        seen = len(doc["versions"])
        time.sleep(0.02)
        new, decision = promote(doc, [candidate(pid, au_pr)], THRESHOLD, NOW)
        assert len(new["versions"]) == seen + 1
        return new, decision

    return change


def assert_all_registered(doc: dict, pids: list[str], best: str):
    assert sorted(v["version"] for v in doc["versions"]) == sorted(
        f"{p}-training-abcde-1" for p in pids
    )
    assert doc["champion"] == f"{best}-training-abcde-1"
    assert [v["version"] for v in doc["versions"] if v["status"] == CHAMPION] == [doc["champion"]]


def test_local_concurrent_updates_from_threads_all_survive(tmp_path):
    store = LocalStore(str(tmp_path / "registry" / "r.json"))
    pids = [f"run-t{i}" for i in range(8)]
    errors = []

    def worker(i: int):
        try:
            LocalStore(store.path).update(slow_promote_change(pids[i], 0.6 + i / 100))
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert_all_registered(store.read(), pids, best="run-t7")
    assert not list(Path(store.path).parent.glob("*.tmp"))


PROCESS_WORKER = """
import sys, time
from churn_airflow import registry
path, pid, au_pr, start = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
time.sleep(max(0.0, start - time.time()))  # start together

def change(doc):
    time.sleep(0.05)
    c = registry.Candidate(pid, "training", "abcde-1", "/m/" + pid, {"au_pr": au_pr})
    return registry.promote(doc, [c], 0.5, "now")

print(registry.LocalStore(path).update(change)["version"])
"""


def test_local_concurrent_updates_from_processes_all_survive(tmp_path, subprocess_env):
    import time

    path = str(tmp_path / "registry" / "r.json")
    pids = [f"run-p{i}" for i in range(4)]
    start = time.time() + 2.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PROCESS_WORKER, path, pid, str(0.6 + i / 100), str(start)],
            env=subprocess_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, pid in enumerate(pids)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outputs
    assert sorted(out.strip() for out, _ in outputs) == sorted(
        f"{p}-training-abcde-1" for p in pids
    )
    assert_all_registered(LocalStore(path).read(), pids, best="run-p3")


# The GcsStore is tested against a GCS API server: tests/plugins/test_gcs_emulator.py.


# --- CLI ----------------------------------------------------------------------------------------


CHURN = Path(sys.executable).with_name("churn")  # the console script `make` installs


def cli(root: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    """``churn registry --root ROOT ...``, as the README gives it."""
    return subprocess.run(
        [str(CHURN), "registry", "--root", str(root), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=root,
    )


def test_cli_show_and_rollback(tmp_path, subprocess_env):
    shown = cli(tmp_path, subprocess_env, "show")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == empty()

    store = registry.store(str(tmp_path))
    store.update(promote_change("20261129", 0.7))
    store.update(promote_change("20261130", 0.8))
    assert store.read()["champion"] == "20261130-training-abcde-1"

    rolled = cli(tmp_path, subprocess_env, "promote", "20261129-training-abcde-1")
    assert rolled.returncode == 0, rolled.stderr
    printed = json.loads(rolled.stdout)
    assert printed["champion"] == "20261129-training-abcde-1"
    assert printed == store.read()
    assert statuses(printed) == {
        "20261129-training-abcde-1": CHAMPION,
        "20261130-training-abcde-1": RETIRED,
    }
    assert printed["history"][-1]["reason"] == "manual"


def test_cli_promote_of_an_unknown_version_fails(tmp_path, subprocess_env):
    registry.store(str(tmp_path)).update(promote_change("20261129", 0.7))
    before = Path(registry.registry_uri(str(tmp_path))).read_text()
    failed = cli(tmp_path, subprocess_env, "promote", "nope")
    assert failed.returncode == 1
    assert failed.stderr.strip().startswith("churn registry: version 'nope' is not registered")
    assert "Traceback" not in failed.stderr
    assert Path(registry.registry_uri(str(tmp_path))).read_text() == before


def test_cli_needs_a_root(tmp_path, subprocess_env):
    result = subprocess.run(
        [str(CHURN), "registry", "show"],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--root" in result.stderr
    assert os.path.exists(tmp_path)
