"""DAG integrity: imports, schedules, params, retries, tags and the task graph."""

from __future__ import annotations

import copy
import datetime as dt
import re

import pytest
from airflow.models.dagbag import DagBag
from airflow.sdk.exceptions import ParamValidationError

from tests.dags.conftest import REPO

TRAINING, SCORING = "customer_churn_training", "customer_churn_batch_scoring"
ROLLBACK = "customer_churn_rollback"


@pytest.fixture(scope="module")
def bag(airflow_db) -> DagBag:
    return DagBag(str(REPO / "dags"))


def test_no_import_errors(bag):
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {TRAINING, SCORING, ROLLBACK}


@pytest.mark.parametrize("dag_id", [TRAINING, SCORING])
def test_house_rules(bag, dag_id):
    dag = bag.get_dag(dag_id)
    assert "churn" in dag.tags and len(dag.tags) >= 3
    assert dag.doc_md and "Backfill" in dag.doc_md
    assert dag.start_date.tzinfo is not None
    assert dag.max_active_runs == 1
    assert not dag.catchup
    for task in dag.tasks:
        assert task.retries >= 1, task.task_id


def test_training_graph_and_schedule(bag):
    dag = bag.get_dag(TRAINING)
    assert type(dag.timetable).__name__ == "AssetOrTimeSchedule"  # daily, or on a drift alert
    assert dag.timetable.timetable.expression == "0 0 * * *"
    assert "churn://customer_churn_ds/feature_drift" in repr(dag.timetable.asset_condition)
    assert {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks} == {
        "plan_run": ["run_training_pipeline", "wait_for_training_data"],
        "wait_for_training_data": ["run_training_pipeline"],
        "run_training_pipeline": ["promote_champion"],
        "promote_champion": [],
    }
    assert dag.get_task("wait_for_training_data").mode == "reschedule"
    assert [o.uri for o in dag.get_task("promote_champion").outlets] == [
        "churn://registry/customer-churn-model/champion"
    ]


def test_registry_updates_run_one_at_a_time_through_a_pool(bag):
    from airflow.models.pool import Pool

    from churn_airflow.settings import REGISTRY_POOL

    assert bag.get_dag(TRAINING).get_task("promote_champion").pool == REGISTRY_POOL
    assert bag.get_dag(TRAINING).max_active_runs == 1
    pool = Pool.get_pool(REGISTRY_POOL)  # created by airflow_setup, as every deployment does
    assert pool is not None and pool.slots == 1


def test_local_pipelines_queue_for_the_machines_spark_slots(bag):
    from airflow.models.pool import Pool

    from churn_airflow.settings import LOCAL_SPARK_POOL
    from churn_core import local_slots

    assert bag.get_dag(TRAINING).get_task("run_training_pipeline").pool == LOCAL_SPARK_POOL
    assert Pool.get_pool(LOCAL_SPARK_POOL).slots == local_slots.slots()


def test_scoring_graph_and_schedule(bag):
    dag = bag.get_dag(SCORING)
    assert type(dag.timetable).__name__ == "AssetOrTimeSchedule"
    assert dag.timetable.timetable.expression == "0 0 * * *"
    assert "churn://registry/customer-churn-model/champion" in repr(dag.timetable.asset_condition)
    assert {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks} == {
        "plan_scoring": [
            "check_drift",
            "submit_scoring",
            "validate_predictions",
            "wait_for_scoring_input",
        ],
        "wait_for_scoring_input": ["submit_scoring"],
        "submit_scoring": ["validate_predictions", "wait_for_scoring"],
        "wait_for_scoring": ["validate_predictions"],
        "validate_predictions": ["check_drift"],
        "check_drift": ["publish_drift_alert"],
        "publish_drift_alert": [],
    }
    assert dag.get_task("wait_for_scoring").mode == "reschedule"
    assert [o.name for o in dag.get_task("publish_drift_alert").outlets] == ["customer_churn_drift"]
    assert dag.params["drift_warning"] == 0.1 and dag.params["drift_alert"] == 0.25


def test_the_rollback_dag_moves_the_champion_and_re_scores_on_demand(bag):
    from churn_airflow.settings import REGISTRY_POOL

    dag = bag.get_dag(ROLLBACK)
    assert type(dag.timetable).__name__ == "NullTimetable" and not dag.is_paused_upon_creation
    (task,) = dag.tasks
    assert task.pool == REGISTRY_POOL and task.retries >= 1
    assert [a.uri for a in task.outlets] == ["churn://registry/customer-churn-model/champion"]
    assert [a.uri for a in task.inlets] == ["churn://customer_churn_ds/batch_predictions"]
    with pytest.raises(ParamValidationError):
        copy.deepcopy(dag.params).validate()  # no version, no reason: the form asks for both


def test_retrain_on_drift_can_be_switched_off(monkeypatch, airflow_db):
    monkeypatch.setenv("CHURN_RETRAIN_ON_DRIFT", "false")
    dag = DagBag(str(REPO / "dags" / "customer_churn_training.py")).get_dag(TRAINING)
    assert dag.timetable.expression == "0 0 * * *"


def test_training_params_are_typed_and_bounded(bag):
    params = bag.get_dag(TRAINING).params
    assert params["aupr_threshold"] == 0.5
    assert params.get_param("aupr_threshold").schema == {
        "type": "number",
        "minimum": 0,
        "maximum": 1,
    }
    assert params.get_param("aupr_threshold").description.startswith("Tune and promote")
    assert params.get_param("grid").schema["enum"] == ["small", "default", "large"]
    assert params.get_param("folds").schema == {"type": "integer", "minimum": 2, "maximum": 10}
    bad = (
        {"aupr_threshold": 1.5},
        {"folds": 1},
        {"folds": 11},
        {"grid": "huge"},
        {"pipeline_id": "Bad_Id"},
        {"pipeline_id": "abc-"},
        {"pipeline_id": "a" * 33},
        {"day": "2026-02-30"},
        {"day": "yesterday"},
    )
    for conf in bad:
        trial = copy.deepcopy(params)
        with pytest.raises(ParamValidationError):
            trial.update(conf)
            trial.validate()


def test_parse_does_not_touch_variables_or_the_network(monkeypatch, airflow_db):
    """Parsing with Variable.get and sockets broken still works."""
    import socket

    from airflow.sdk import Variable

    def refuse(*args, **kwargs):
        raise AssertionError("touched at parse time")

    monkeypatch.setattr(Variable, "get", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("CHURN_BACKEND", "gcp")
    bag = DagBag(str(REPO / "dags"))
    assert bag.import_errors == {}
    run = bag.get_dag(TRAINING).get_task("run_training_pipeline")
    assert type(run).__name__ == "LazyPipelineJobOperator"
    assert run.deferrable
    # What the DAG processor stores: the task and its console link survive serialization.
    from airflow.serialization.serialized_objects import DagSerialization

    stored = DagSerialization.to_dict(bag.get_dag(TRAINING))["dag"]["tasks"]
    (task,) = [t["__var"] for t in stored if t["__var"]["task_id"] == "run_training_pipeline"]
    assert task["_operator_extra_links"] == {"Vertex AI pipeline job": "_link_PipelineJobLink"}


def test_gcp_parse_does_not_import_the_vertex_provider(airflow_db):
    """The provider's Vertex module costs seconds to import: parsing must not load it."""
    import os
    import subprocess
    import sys

    heavy = ("google.cloud.aiplatform", "airflow.providers.google.cloud.operators.vertex_ai")
    probe = (
        "import sys; from airflow.dag_processing.dagbag import DagBag; "
        f"bag = DagBag({str(REPO / 'dags')!r}); assert not bag.import_errors, bag.import_errors; "
        f"print(sorted(m for m in sys.modules if m.startswith({heavy!r})))"
    )
    env = {**os.environ, "CHURN_BACKEND": "gcp"}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.splitlines()[-1] == "[]"


@pytest.mark.parametrize("dag_id", [TRAINING, SCORING])
def test_no_task_templates_the_logical_date(bag, dag_id):
    """Runs triggered without --logical-date and asset-triggered runs have no ds or ts."""
    for task in bag.get_dag(dag_id).tasks:
        for field in task.template_fields:
            text = repr(getattr(task, field, ""))
            for name in ("ds", "ts", "logical_date", "ds_nodash", "execution_date"):
                assert not re.search(rf"{{{{[^}}]*\b{name}\b", text), (task.task_id, field)


def test_start_date_is_in_the_past(bag):
    assert bag.get_dag(TRAINING).start_date < dt.datetime.now(dt.UTC)
