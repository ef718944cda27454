"""The model registry: promotion decisions, the two stores and the rollback CLI."""

from __future__ import annotations

import copy
import dataclasses
import getpass
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from churn_core import registry, stages
from churn_core.registry import (
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
from churn_core.run_records import ModelMetrics

TRAINING, TUNING = (stage.folder for stage in stages.MODELS)  # what a Candidate carries

NOW = "2026-11-29T03:00:00+00:00"
LATER = "2026-11-30T03:00:00+00:00"
THRESHOLD = 0.5
OLD = "20261129-training-abcde-1"
NEW = "20261130-training-abcde-1"


def candidate(
    pid: str,
    au_pr: float,
    operation: str = TRAINING,
    attempt: str = "abcde-1",
    versus: dict | None = None,
) -> Candidate:
    return Candidate(
        pipeline_id=pid,
        operation=operation,
        attempt=attempt,
        model_uri=f"/root/models/customer-churn-model/{operation}/{pid}/{attempt}",
        metrics={"au_pr": au_pr, "au_roc": 0.8},
        seed=42,
        comparison=versus,
    )


def versus(
    champion: str = OLD,
    ours: float = 0.662,
    theirs: float = 0.655,
    lower: float = -0.004,
    upper: float = 0.018,
    rows: int = 1409,
) -> dict:
    """A run's comparison with ``champion`` on its own test rows."""
    return {
        "champion": champion,
        "comparable": True,
        "rows": rows,
        "replicates": 1000,
        "confidence": 0.95,
        "au_pr": {"challenger": ours, "champion": theirs, "delta": ours - theirs,
                  "lower": lower, "upper": upper},
        "au_roc": {"challenger": 0.81, "champion": 0.8, "delta": 0.01,
                   "lower": -0.01, "upper": 0.03},
    }  # fmt: skip


def statuses(doc: dict) -> dict[str, str]:
    return {v["version"]: v["status"] for v in doc["versions"]}


def first_run(au_pr: float = 0.7) -> dict:
    doc, _ = promote(empty(), [candidate("20261129", au_pr)], THRESHOLD, NOW)
    return doc


def challenge(doc: dict, ours: float, lower: float, upper: float = 0.05, **kwargs):
    """Day two's model, compared on day two's rows with the champion of ``doc``."""
    c = candidate("20261130", ours, versus=versus(doc["champion"], ours, lower=lower,
                                                  upper=upper))  # fmt: skip
    return promote(doc, [c], THRESHOLD, LATER, **kwargs)


# --- decisions -------------------------------------------------------------------------------


def test_first_model_above_threshold_becomes_champion():
    doc, decision = promote(empty(), [candidate("20261129", 0.7)], THRESHOLD, NOW)
    assert decision == {
        "promoted": True,
        "version": OLD,
        "champion": OLD,
        "mode": "auto",
        "reason": f"{OLD}: test AUPR 0.700 passes the threshold 0.5 and there is no champion",
        "at": NOW,
        "compared_with": None,
        "comparison": None,
    }
    assert doc["champion"] == OLD
    assert doc["model"] == "customer-churn-model"
    assert doc["versions"] == [
        {
            "version": OLD,
            "pipeline_id": "20261129",
            "operation": "training",
            "attempt": "abcde-1",
            "model_uri": "/root/models/customer-churn-model/training/20261129/abcde-1",
            "metrics": {"au_pr": 0.7, "au_roc": 0.8},
            "seed": 42,
            "comparison": None,
            "usage": None,
            "registered_at": NOW,
            "status": CHAMPION,
        }
    ]
    assert doc["history"] == [decision]
    assert champion(doc)["version"] == OLD


def test_exactly_the_threshold_is_enough():
    _, decision = promote(empty(), [candidate("20261129", 0.5)], THRESHOLD, NOW)
    assert decision["promoted"] is True


def test_below_threshold_is_registered_but_not_promoted():
    doc, decision = promote(empty(), [candidate("20261129", 0.42)], THRESHOLD, NOW)
    assert decision["promoted"] is False
    assert decision["champion"] is None
    assert decision["reason"] == (
        f"{OLD}: test AUPR 0.420 is below the threshold 0.5 (the sanity floor)"
    )
    assert doc["champion"] is None
    assert statuses(doc) == {OLD: BELOW_THRESHOLD}
    assert doc["history"] == []  # only promotions and dry runs are history
    with pytest.raises(LookupError):
        champion(doc)


def test_the_threshold_stays_a_floor_whatever_the_evidence():
    _, decision = challenge(first_run(0.7), 0.45, lower=0.2, upper=0.3)
    assert decision["promoted"] is False
    assert "below the threshold 0.5 (the sanity floor)" in decision["reason"]


def test_an_interval_that_reaches_zero_is_noise_and_not_promoted():
    """The issue's example: a higher AUPR on the same rows, but not clearly higher."""
    doc, decision = challenge(first_run(0.7), 0.662, lower=-0.004, upper=0.018)
    assert decision["promoted"] is False
    assert decision["reason"] == (
        f"challenger {NEW} 0.662 vs champion {OLD} 0.655 on 1,409 rows, "
        "AUPR \u0394 +0.007 [\u22120.004, +0.018] (95%): not promoted "
        "(the lower bound must be above zero and reach +0.005)"
    )
    assert decision["compared_with"] == OLD
    assert decision["comparison"]["au_pr"]["lower"] == -0.004
    assert doc["champion"] == OLD
    assert statuses(doc) == {OLD: CHAMPION, NEW: CANDIDATE}
    assert registry.find(doc, NEW)["comparison"] == versus(OLD, 0.662, lower=-0.004, upper=0.018)
    assert len(doc["history"]) == 1


def test_a_lower_bound_above_zero_but_below_the_minimum_is_not_enough():
    _, decision = challenge(first_run(0.7), 0.662, lower=0.003)
    assert decision["promoted"] is False
    _, decision = challenge(first_run(0.7), 0.662, lower=0.003, min_improvement=0.002)
    assert decision["promoted"] is True


def test_with_no_minimum_the_interval_must_still_lie_above_zero():
    """An identical model (every replicate's difference 0) never takes over."""
    _, same = challenge(first_run(0.7), 0.655, lower=0.0, upper=0.0, min_improvement=0.0)
    assert same["promoted"] is False
    _, better = challenge(first_run(0.7), 0.67, lower=0.0001, min_improvement=0.0)
    assert better["promoted"] is True


def test_a_clearly_better_model_on_the_same_rows_takes_over_whatever_its_own_day_scored():
    """Its own AUPR (0.60) is below the champion's recorded one (0.70, another day's rows):
    the same-rows evidence decides, not the numbers of different days."""
    doc, decision = challenge(first_run(0.7), 0.60, lower=0.012, upper=0.04)
    assert decision["promoted"] is True
    assert decision["reason"].endswith(": promoted")
    assert "on 1,409 rows, AUPR \u0394 " in decision["reason"]
    assert doc["champion"] == NEW
    assert statuses(doc) == {OLD: RETIRED, NEW: CHAMPION}
    assert [h["version"] for h in doc["history"]] == [OLD, NEW]


def test_promote_does_not_change_the_document_it_is_given():
    before = first_run(0.7)
    snapshot = copy.deepcopy(before)
    challenge(before, 0.9, lower=0.1)
    assert before == snapshot


def test_a_champion_that_changed_since_the_run_scored_it_is_not_replaced():
    """Compare-and-swap: the evidence is about the champion the run scored."""
    doc, _ = challenge(first_run(0.7), 0.8, lower=0.05)
    assert doc["champion"] == NEW
    late = candidate("20261201", 0.9, versus=versus(OLD, 0.9, lower=0.2))
    doc, decision = promote(doc, [late], THRESHOLD, LATER)
    assert decision["promoted"] is False
    assert decision["reason"] == (
        f"the champion changed from {OLD} to {NEW} while this run scored {OLD}: "
        "20261201-training-abcde-1 not promoted"
    )
    assert doc["champion"] == NEW


def test_a_run_that_started_without_a_champion_does_not_replace_a_new_one():
    doc, decision = promote(first_run(0.7), [candidate("20261130", 0.9)], THRESHOLD, LATER)
    assert decision["promoted"] is False
    assert doc["champion"] == OLD
    assert decision["reason"] == (
        f"the champion changed from none to {OLD} while this run scored no champion: "
        f"{NEW} not promoted"
    )


def test_an_incomparable_champion_is_reported_and_not_replaced_automatically():
    reason = f"champion {OLD}: its features need columns the run's rows lack: ['contract']"
    c = candidate("20261130", 0.9, versus={"champion": OLD, "comparable": False, "reason": reason})
    doc, decision = promote(first_run(0.7), [c], THRESHOLD, LATER)
    assert decision["promoted"] is False
    assert decision["reason"] == (
        f"{reason}; it is not compared, so {NEW} is not promoted automatically "
        "(promote it by hand with the registry CLI if it should be)"
    )
    assert doc["champion"] == OLD
    assert registry.find(doc, NEW)["comparison"]["comparable"] is False


def test_the_models_of_a_run_must_share_the_champion_they_were_compared_with():
    mixed = [candidate("20261130", 0.7, versus=versus(OLD)), candidate("20261130", 0.7, TUNING)]
    with pytest.raises(ValueError, match="compared with different champions"):
        promote(first_run(), mixed, THRESHOLD, LATER)


def test_rerunning_a_day_adds_versions_and_leaves_the_champion_alone():
    """A new attempt of the champion's day registers new versions beside it: its files and
    entry stay as they were. The same data and seed give the same model: no difference."""
    doc = first_run(0.8)
    before = registry.find(doc, OLD)
    same = candidate("20261129", 0.8, attempt="abcde-2",
                     versus=versus(OLD, 0.8, 0.8, lower=0.0, upper=0.0))  # fmt: skip
    doc, decision = promote(doc, [same], THRESHOLD, LATER)
    assert decision["promoted"] is False
    assert "AUPR \u0394 +0.000 [+0.000, +0.000] (95%): not promoted" in decision["reason"]
    assert doc["champion"] == OLD
    assert registry.find(doc, OLD) == before
    assert statuses(doc) == {OLD: CHAMPION, "20261129-training-abcde-2": CANDIDATE}


def test_registering_the_same_attempt_again_replaces_its_entries():
    """promote_champion cleared and run again after it promoted: the same versions, no
    duplicates, and the champion it made is not counted as a change under the run."""
    doc, _ = challenge(first_run(0.7), 0.8, lower=0.05)
    again, decision = challenge(doc, 0.8, lower=0.05)
    assert decision["champion"] == NEW
    assert [v["version"] for v in again["versions"]] == [OLD, NEW]
    assert again["champion"] == NEW
    assert statuses(again) == {OLD: RETIRED, NEW: CHAMPION}


def test_best_of_run_picks_tuning_when_it_is_better():
    doc, decision = promote(
        empty(), [candidate("20261129", 0.70), candidate("20261129", 0.74, TUNING)], THRESHOLD, NOW
    )
    assert decision["version"] == "20261129-hyperparameter-tuning-abcde-1"
    assert doc["champion"] == "20261129-hyperparameter-tuning-abcde-1"
    assert statuses(doc) == {
        OLD: CANDIDATE,
        "20261129-hyperparameter-tuning-abcde-1": CHAMPION,
    }


def test_best_of_run_prefers_training_on_a_tie():
    _, decision = promote(
        empty(), [candidate("20261129", 0.7, TUNING), candidate("20261129", 0.7)], THRESHOLD, NOW
    )
    assert decision["version"] == OLD


def test_the_best_of_run_is_judged_on_its_own_comparison():
    trained = candidate("20261130", 0.70, versus=versus(OLD, 0.70, lower=-0.01))
    tuned = candidate("20261130", 0.74, TUNING, versus=versus(OLD, 0.74, lower=0.02))
    doc, decision = promote(first_run(0.7), [trained, tuned], THRESHOLD, LATER)
    assert decision["version"] == doc["champion"] == "20261130-hyperparameter-tuning-abcde-1"
    assert decision["comparison"]["au_pr"]["challenger"] == 0.74


def test_candidates_of_a_run_below_threshold_are_marked_one_by_one():
    doc, decision = promote(
        empty(), [candidate("20261129", 0.45), candidate("20261129", 0.52, TUNING)], THRESHOLD, NOW
    )
    assert decision["promoted"] is True
    assert statuses(doc) == {
        OLD: BELOW_THRESHOLD,
        "20261129-hyperparameter-tuning-abcde-1": CHAMPION,
    }


def test_a_run_without_models_is_an_error():
    with pytest.raises(ValueError, match="at least one model"):
        promote(empty(), [], THRESHOLD, NOW)


def test_an_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="promotion mode 'sometimes'"):
        promote(empty(), [candidate("20261129", 0.7)], THRESHOLD, NOW, mode="sometimes")


# --- promotion modes ----------------------------------------------------------------------------


def test_dry_run_records_the_decision_and_leaves_the_champion():
    doc = first_run(0.7)
    after, decision = challenge(doc, 0.8, lower=0.05, mode="dry_run")
    assert decision["promoted"] is False
    assert decision["would_promote"] is True
    assert decision["mode"] == "dry_run"
    assert decision["reason"].startswith("dry run, would promote: challenger ")
    assert decision["reason"].endswith(f": promoted; the champion stays {OLD}")
    assert after["champion"] == OLD
    assert statuses(after) == {OLD: CHAMPION, NEW: CANDIDATE}
    assert after["history"] == [*doc["history"], decision]


def test_dry_run_of_a_refused_model_is_recorded_too():
    after, decision = challenge(first_run(0.7), 0.66, lower=-0.01, mode="dry_run")
    assert (decision["promoted"], decision["would_promote"]) == (False, False)
    assert decision["reason"].startswith("dry run, would not promote: ")
    assert after["history"][-1]["mode"] == "dry_run"


def test_dry_run_without_a_champion_sets_none():
    doc, decision = promote(empty(), [candidate("20261129", 0.7)], THRESHOLD, NOW, mode="dry_run")
    assert doc["champion"] is None
    assert decision["would_promote"] is True
    assert decision["reason"].endswith("the champion stays unset")
    assert statuses(doc) == {OLD: CANDIDATE}


def test_off_only_registers():
    doc = first_run(0.7)
    after, decision = challenge(doc, 0.9, lower=0.3, mode="off")
    assert decision["promoted"] is False
    assert decision["reason"] == f"promotion is off for this run: {NEW} registered only"
    assert after["champion"] == OLD
    assert after["history"] == doc["history"]
    assert statuses(after) == {OLD: CHAMPION, NEW: CANDIDATE}


def test_candidate_from_metrics_document():
    doc = {
        "pipeline_id": "20261129",
        "pipeline_execution_dt": "2026-11-29",
        "operation": TUNING,
        "model_uri": "gs://m/models/x",
        "metrics": {"au_pr": "0.61"},
        "seed": 42,
        "feature_importances": [],
        "champion": {"version": OLD, "metrics": {}, "roc_curve": {}},
        "comparison": {**versus(), "method": "paired bootstrap"},
    }
    c = Candidate.from_metrics(ModelMetrics.from_json(doc), "abcde-1")
    assert (c.version, c.model_uri, c.au_pr, c.seed) == (
        "20261129-hyperparameter-tuning-abcde-1",
        "gs://m/models/x",
        0.61,
        42,
    )
    assert c.comparison == versus()  # what the registry keeps of the comparison
    assert c.scored_champion == OLD
    legacy = ModelMetrics.from_json({k: doc[k] for k in list(doc)[:5]})
    assert legacy.to_json()["seed"] is None and "folds" not in legacy.to_json()
    legacy = Candidate.from_metrics(legacy, "abcde-1")
    assert (legacy.seed, legacy.comparison, legacy.scored_champion) == (None, None, None)
    with pytest.raises(ValueError, match=r"gs://m/x.json is not a model's metrics: .*'model_uri'"):
        ModelMetrics.from_json({k: v for k, v in doc.items() if k != "model_uri"}, "gs://m/x.json")


# --- manual promotion / rollback --------------------------------------------------------------


def test_set_champion_rolls_back():
    doc, _ = challenge(first_run(0.7), 0.75, lower=0.02)
    why = "rollback by ana: the new model over-predicts churn in EMEA"
    rolled = set_champion(doc, "20261129-training-abcde-1", "2026-12-01T00:00:00+00:00", why)
    assert rolled["champion"] == "20261129-training-abcde-1"
    assert statuses(rolled) == {
        "20261129-training-abcde-1": CHAMPION,
        "20261130-training-abcde-1": RETIRED,
    }
    assert rolled["history"][-1] == {
        "promoted": True,
        "version": "20261129-training-abcde-1",
        "champion": "20261129-training-abcde-1",
        "replaced": "20261130-training-abcde-1",
        "reason": why,
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


def promote_change(pid: str, au_pr: float, scored: str | None = None):
    """A run's registry update; it scored ``scored`` (clearly worse) or started without one."""
    evidence = versus(scored, au_pr, lower=0.05) if scored else None
    return lambda doc: promote(doc, [candidate(pid, au_pr, versus=evidence)], THRESHOLD, NOW)


def test_local_read_of_a_missing_file_is_empty(tmp_path):
    assert LocalStore(str(tmp_path / "none" / "r.json")).read() == empty()


def test_local_update_replaces_the_file_atomically(tmp_path):
    path = tmp_path / "registry" / "customer-churn-model.json"
    store = LocalStore(str(path))
    decision = store.update(promote_change("20261129", 0.7))
    assert decision["promoted"] is True
    first_inode = path.stat().st_ino
    assert json.loads(path.read_text())["champion"] == "20261129-training-abcde-1"

    store.update(promote_change("20261130", 0.8, scored=OLD))
    assert path.stat().st_ino != first_inode  # a new file renamed over the old one
    assert store.read()["champion"] == "20261130-training-abcde-1"
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "customer-churn-model.backups",
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


def test_local_updates_keep_the_last_versions_and_a_corrupt_document_names_one(tmp_path):
    path = tmp_path / "r.json"
    store = LocalStore(str(path))
    written = []
    for n in range(registry.KEPT_BACKUPS + 3):
        store.update(lambda doc, n=n: ({**doc, "n": n}, None))
        written.append(path.read_text())
    kept = sorted((tmp_path / "r.backups").iterdir())
    assert [p.read_text() for p in kept] == written[-registry.KEPT_BACKUPS - 1 : -1]
    path.write_text('{"champion": "v1", "versi')  # a hand edit gone wrong
    with pytest.raises(registry.CorruptRegistry) as err:
        store.update(lambda doc: (doc, None))
    assert str(err.value) == (
        f"the registry document {path} is not valid JSON (Unterminated string starting at, "
        f"line 1); copy its last good version {kept[-1]} over it"
    )
    assert path.read_text() == '{"champion": "v1", "versi'  # refused, not replaced


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


def assert_all_registered(doc: dict, pids: list[str], decisions: list[dict]):
    """Every run registered; the first to take the lock became champion, and every later one
    saw that the champion it did not score had appeared (compare-and-swap)."""
    assert sorted(v["version"] for v in doc["versions"]) == sorted(
        f"{p}-training-abcde-1" for p in pids
    )
    assert [v["version"] for v in doc["versions"] if v["status"] == CHAMPION] == [doc["champion"]]
    promoted = [d["version"] for d in decisions if d["promoted"]]
    assert promoted == [doc["champion"]]
    refused = [d["reason"] for d in decisions if not d["promoted"]]
    assert len(refused) == len(pids) - 1
    assert all(
        r.startswith(f"the champion changed from none to {doc['champion']} ") for r in refused
    ), refused
    assert doc["history"] == [d for d in decisions if d["promoted"]]


def test_local_concurrent_updates_from_threads_all_survive(tmp_path):
    store = LocalStore(str(tmp_path / "registry" / "r.json"))
    pids = [f"run-t{i}" for i in range(8)]
    errors, decisions = [], []

    def worker(i: int):
        try:
            change = slow_promote_change(pids[i], 0.6 + i / 100)
            decisions.append(LocalStore(store.path).update(change))
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert_all_registered(store.read(), pids, decisions)
    assert not list(Path(store.path).parent.glob("*.tmp"))


PROCESS_WORKER = """
import json, sys, time
from churn_core import registry
path, pid, au_pr, start = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
time.sleep(max(0.0, start - time.time()))  # start together

def change(doc):
    time.sleep(0.05)
    c = registry.Candidate(pid, "training", "abcde-1", "/m/" + pid, {"au_pr": au_pr})
    return registry.promote(doc, [c], 0.5, "now")

print(json.dumps(registry.LocalStore(path).update(change)))
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
    decisions = [json.loads(out) for out, _ in outputs]
    assert sorted(d["version"] for d in decisions) == sorted(f"{p}-training-abcde-1" for p in pids)
    doc = LocalStore(path).read()
    assert_all_registered(doc, pids, sorted(decisions, key=lambda d: d["promoted"] is False))


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
    shown = cli(tmp_path, subprocess_env, "show", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == empty()

    store = registry.store(str(tmp_path))
    store.update(promote_change("20261129", 0.7))
    store.update(promote_change("20261130", 0.8, scored=OLD))
    assert store.read()["champion"] == "20261130-training-abcde-1"

    rolled = cli(tmp_path, subprocess_env, "promote", "20261129-training-abcde-1",
                 "--reason", "EMEA over-predicted", "--registry-only")  # fmt: skip
    assert rolled.returncode == 0, rolled.stderr
    assert "nothing re-scores until the next scheduled scoring run" in rolled.stderr
    printed = json.loads(rolled.stdout)
    assert printed["champion"] == "20261129-training-abcde-1"
    assert printed == store.read()
    assert statuses(printed) == {
        "20261129-training-abcde-1": CHAMPION,
        "20261130-training-abcde-1": RETIRED,
    }
    assert printed["history"][-1]["reason"] == (
        f"rollback by {getpass.getuser()}: EMEA over-predicted"
    )


def test_cli_show_is_a_table_with_cost_and_a_plot(tmp_path, subprocess_env):
    """Each version's AUPR, its interval against the champion it was compared with, what its
    retrain cost (priced on Dataproc, the machine's seconds locally) and its status."""
    cloud = {"dcu_hours": 1.5, "shuffle_gb_hours": 2.0, "cost": 0.0901, "currency": "USD"}
    machine = {"wall_seconds": 312.4, "cpu_seconds": 540.0, "peak_memory_mb": 2048}

    def promote_spent(pid, au_pr, spent, scored=None):
        evidence = versus(scored, au_pr, lower=0.05) if scored else None
        made = dataclasses.replace(candidate(pid, au_pr, versus=evidence), usage=spent)
        return lambda doc: promote(doc, [made], THRESHOLD, NOW)

    store = registry.store(str(tmp_path))
    store.update(promote_spent("20261129", 0.7, machine))
    store.update(promote_spent("20261130", 0.8, cloud, scored=OLD))
    plot = tmp_path / "versions.png"
    shown = cli(tmp_path, subprocess_env, "show", "--plot", str(plot))
    assert shown.returncode == 0, shown.stderr
    header, first, second, champion, plotted = shown.stdout.splitlines()
    assert header.split() == ["version", "registered", "AUPR", "vs", "champion", "(AUPR",
                              "delta,", "interval)", "cost", "status"]  # fmt: skip
    cells = [re.split(r"\s{2,}", line.strip()) for line in (first, second)]
    assert cells == [
        ["20261129-training-abcde-1", "2026-11-29", "0.7000", "no champion",
         "312 s wall, 540 s CPU, 2048 MB peak", "retired"],
        ["*", "20261130-training-abcde-1", "2026-11-29", "0.8000",
         f"+0.1450 [+0.0500, +0.0180] vs {OLD}", "0.0901 USD (1.500 DCU-hours)", "champion"],
    ]  # fmt: skip
    assert champion == "champion: 20261130-training-abcde-1"
    assert plotted == f"plot: {plot}" and plot.read_bytes()[:4] == b"\x89PNG"


def test_cli_promote_of_an_unknown_version_fails(tmp_path, subprocess_env):
    registry.store(str(tmp_path)).update(promote_change("20261129", 0.7))
    before = Path(registry.registry_uri(str(tmp_path))).read_text()
    failed = cli(tmp_path, subprocess_env, "promote", "nope", "--reason", "x")
    assert failed.returncode == 1
    assert failed.stderr.strip().startswith("churn registry: version 'nope' is not registered")
    assert "Traceback" not in failed.stderr
    assert Path(registry.registry_uri(str(tmp_path))).read_text() == before


def test_cli_promote_without_a_running_airflow_says_what_to_do(tmp_path, subprocess_env):
    """Without --registry-only it starts the rollback DAG; with no Airflow set up in this
    shell that fails in one sentence, and the registry is untouched."""
    registry.store(str(tmp_path)).update(promote_change("20261129", 0.7))
    before = Path(registry.registry_uri(str(tmp_path))).read_text()
    env = {**subprocess_env, "AIRFLOW_HOME": str(tmp_path / "no-airflow")}
    failed = cli(tmp_path, env, "promote", "20261129-training-abcde-1", "--reason", "test")
    assert failed.returncode == 1
    (line,) = failed.stderr.strip().splitlines()
    assert line.startswith("churn registry: could not trigger customer_churn_rollback in this")
    assert line.endswith("start Airflow (make airflow-up), or move the registry alone with "
                         "--registry-only")  # fmt: skip
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
