"""``churn lineage``: the graph of the jobs' run events, from raw day files to predictions."""

from __future__ import annotations

import json
import uuid

import pytest
from openlineage.client.serde import Serde

from churn_core import layout, stages
from churn_ml.run_events import DatasetRef, JobRun, event
from churn_tools import lineage
from churn_tools.lineage_graph import Dataset, build, describe, select

ROOT = "/srv/churn"
TABLES = f"{ROOT}/warehouse/customer_churn_ds"


def model(pipeline_id: str, stage: stages.Stage, attempt: str = "k7f2q-1") -> str:
    return layout.model_uri(ROOT, stage, pipeline_id, attempt)


def training_day(pipeline_id: str, day: str, attempt: str = "k7f2q-1") -> list[JobRun]:
    partition = DatasetRef(f"{TABLES}/training_data", pipeline_id)
    return [
        JobRun(stages.PREPROCESSING.name, pipeline_id, attempt,
               (DatasetRef(f"{ROOT}/landing/train/dt={day}"),), (partition,)),
        *[
            JobRun(stage.name, pipeline_id, attempt, (partition,),
                   (DatasetRef(model(pipeline_id, stage, attempt)),),
                   layout.model_version(pipeline_id, stage, attempt))
            for stage in stages.MODELS
        ],
    ]  # fmt: skip


def scoring_day(pipeline_id: str, day: str, version: str, model_uri: str) -> JobRun:
    return JobRun(
        stages.SCORING.name,
        pipeline_id,
        "m3x9a-1",
        (DatasetRef(f"{ROOT}/landing/score/dt={day}"), DatasetRef(model_uri)),
        (DatasetRef(f"{TABLES}/batch_predictions", pipeline_id),),
        version,
    )


def events_of(runs: list[JobRun], state: str = "COMPLETE") -> list[dict]:
    """Each run's START and its end, as the jobs write them (the client's own JSON)."""
    found = []
    for run in runs:
        run_id = str(uuid.uuid4())
        found += [Serde.to_dict(event(run, s, run_id, None)) for s in ("START", state)]
    return found


TUNED = layout.model_version("20261129", stages.TUNING, "k7f2q-1")
HISTORY = [
    *training_day("20261129", "2026-11-29"),
    *training_day("20261130", "2026-11-30"),
    scoring_day("20261130", "2026-11-30", TUNED, model("20261129", stages.TUNING)),
    scoring_day("20261201", "2026-12-01", TUNED, model("20261129", stages.TUNING)),
]


def test_a_scoring_run_leads_back_to_the_day_its_model_was_trained_on():
    graph = select(build(events_of(HISTORY)), "20261201")
    assert sorted((r.job, r.pipeline_id) for r in graph.runs.values()) == [
        ("preprocessing", "20261129"),
        ("scoring", "20261201"),
        ("tuning", "20261129"),
    ]
    text = describe(graph).splitlines()
    assert text[0] == "preprocessing 20261129 (attempt k7f2q-1)"
    assert text[1] == f"    read   {ROOT}/landing/train/dt=2026-11-29"
    assert text[2] == f"    wrote  {TABLES}/training_data [pipeline_id=20261129]"
    assert text[-1] == f"    wrote  {TABLES}/batch_predictions [pipeline_id=20261201]"


def test_a_model_version_shows_what_it_was_trained_on_and_every_day_scored_with_it():
    graph = select(build(events_of(HISTORY)), TUNED)
    scored = {r.pipeline_id for r in graph.runs.values() if r.job == stages.SCORING.name}
    assert scored == {"20261130", "20261201"}
    # the other day's training partition and models are not part of it
    assert {r.pipeline_id for r in graph.runs.values() if r.job != stages.SCORING.name} == {
        "20261129"
    }
    assert Dataset("file", f"{TABLES}/training_data", "20261130") not in {
        d for found in graph.outputs.values() for d in found
    }


def test_a_partition_replaced_later_leads_only_to_the_runs_that_read_the_new_one():
    """A re-run of the same pipeline_id replaces its partition: the first model still comes
    from the first write, and the re-run's model from the second."""
    first = training_day("20261129", "2026-11-29")
    rerun = training_day("20261129", "2026-11-29", attempt="k7f2q-2")
    graph = build(events_of([*first, *rerun]))
    for attempt in ("k7f2q-1", "k7f2q-2"):
        chosen = select(graph, layout.model_version("20261129", stages.TUNING, attempt))
        assert {(r.job, r.attempt) for r in chosen.runs.values()} == {
            (stages.PREPROCESSING.name, attempt),
            (stages.TUNING.name, attempt),
        }


def test_a_failed_attempt_is_not_drawn():
    failed = events_of(training_day("20261202", "2026-12-02")[:1], state="FAIL")
    with pytest.raises(LookupError, match="no completed run of pipeline_id or model version"):
        select(build(failed), "20261202")


def test_the_command_prints_the_graph_and_draws_it(tmp_path, capsys):
    events = tmp_path / "lineage" / "events.jsonl"
    events.parent.mkdir()
    lines = [json.dumps(e) for e in events_of(HISTORY)]
    events.write_text("\n".join(lines) + '\n{"eventType": "COMPL')  # a writer stopped mid-line
    assert lineage.main(["20261201", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "scoring 20261201 (attempt m3x9a-1, model " in out
    picture = tmp_path / "lineage" / "20261201.png"
    assert out.splitlines()[-1] == f"picture: {picture}"
    assert picture.read_bytes().startswith(b"\x89PNG")


def test_the_command_says_what_is_missing(tmp_path, capsys):
    assert lineage.main(["20261201", "--root", str(tmp_path)]) == 1
    assert "no lineage events at" in capsys.readouterr().err
