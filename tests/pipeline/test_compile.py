"""The committed Vertex template: in sync with the code, and the spec the design asks for."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import yaml

from churn_core import runtime
from pipeline import builder
from pipeline.compile import TEMPLATE, fresh_spec

STEPS = {  # display name -> (step, inside the AUPR gate)
    "Preprocess raw customers": ("preprocessing", False),
    "Train random forest": ("training", False),
    "Tune hyperparameters": ("tuning", True),
}
DISPLAY_NAMES = {
    *STEPS,
    "Register managed dataset",
    "Evaluate trained model",
    "Evaluate tuned model",
    "Record tuning skipped below the threshold",
    "Record tuning switched off",
}


def wired(parameter: str, nested: bool = False) -> dict:
    """A task input that takes a pipeline parameter whole."""
    return {"componentInputParameter": ("pipelinechannel--" if nested else "") + parameter}


@pytest.fixture(scope="module")
def spec() -> dict:
    return yaml.safe_load(TEMPLATE.read_text())


def all_tasks(spec: dict) -> Iterator[tuple[str, str, dict]]:
    """(dag owner, task key, task) for the root DAG and every nested component DAG."""
    yield from (("root", key, task) for key, task in spec["root"]["dag"]["tasks"].items())
    for name, component in spec["components"].items():
        for key, task in component.get("dag", {}).get("tasks", {}).items():
            yield name, key, task


def executor_tasks(spec: dict) -> dict[str, tuple[str, dict]]:
    """Tasks that run a container (not control-flow groups), by display name."""
    found = {}
    for owner, _key, task in all_tasks(spec):
        if "executorLabel" in spec["components"][task["componentRef"]["name"]]:
            name = task["taskInfo"]["name"]
            assert name not in found, f"display name {name!r} used twice"
            found[name] = (owner, task)
    return found


def test_committed_template_matches_a_fresh_compile(spec):
    assert fresh_spec() == spec, (
        f"{TEMPLATE.name} is stale: run `make compile` and commit pipeline/compiled/"
    )


def test_template_header(spec):
    assert spec["pipelineInfo"]["name"] == builder.PIPELINE_NAME
    assert spec["schemaVersion"] == "2.1.0"
    assert spec["sdkVersion"].startswith("kfp-2.")


def test_pipeline_parameters_names_and_types(spec):
    params = spec["root"]["inputDefinitions"]["parameters"]
    types = {name: p["parameterType"] for name, p in params.items()}
    assert types == {
        "pipeline_id": "STRING",
        "pipeline_execution_dt": "STRING",
        "training_data_uri": "STRING",
        "dataset_uri": "STRING",
        "artifact_root": "STRING",
        "code_uri": "STRING",
        "python_file_uris": "LIST",
        "preprocessing_batch_id": "STRING",
        "training_batch_id": "STRING",
        "tuning_batch_id": "STRING",
        "attempt": "STRING",
        "project": "STRING",
        "region": "STRING",
        "container_image": "STRING",
        "runtime_version": "STRING",
        "service_account": "STRING",
        "subnetwork_uri": "STRING",
        "spark_history_server": "STRING",
        "spark_properties": "STRUCT",
        "tuning": "BOOLEAN",
        "aupr_threshold": "NUMBER_DOUBLE",
        "max_drop_fraction": "NUMBER_DOUBLE",
        "max_depth_grid": "STRING",
        "max_bins_grid": "STRING",
        "num_trees_grid": "STRING",
        "folds": "NUMBER_INTEGER",
        "seed": "NUMBER_INTEGER",
        "champion_version": "STRING",
        "champion_model_uri": "STRING",
        "champion_seed": "STRING",
        "preprocessing_batch": "STRUCT",
        "training_batch": "STRUCT",
        "tuning_batch": "STRUCT",
        "training_metrics_uri": "STRING",
        "tuning_metrics_uri": "STRING",
        "training_table_uri": "STRING",
        "dataset_display_name": "STRING",
        "dataset_registry_uri": "STRING",
        "labels": "STRUCT",
    }
    defaults = {name: p["defaultValue"] for name, p in params.items() if "defaultValue" in p}
    assert defaults == {
        "project": "",
        "region": "us-central1",
        "container_image": "",
        "runtime_version": runtime.DEFAULT,
        "service_account": "",
        "subnetwork_uri": "",
        "spark_history_server": "",
        "spark_properties": {},
        "tuning": True,
        "aupr_threshold": 0.5,
        "max_drop_fraction": 0.05,
        "max_depth_grid": "5,10,15",
        "max_bins_grid": "24,32,40",
        "num_trees_grid": "25,30,35",
        "folds": 5,
        "seed": 42,
        "champion_version": "",
        "champion_model_uri": "",
        "champion_seed": "",
        **{key: {} for key in ("preprocessing_batch", "training_batch", "tuning_batch", "labels")},
        **dict.fromkeys(
            (
                "training_metrics_uri",
                "tuning_metrics_uri",
                "training_table_uri",
                "dataset_display_name",
                "dataset_registry_uri",
            ),
            "",
        ),
    }
    for name, p in params.items():
        assert p.get("isOptional", False) == (name in defaults), name
        assert len(p.get("description", "")) > 10, f"{name} has no docstring description"
    assert params["aupr_threshold"]["description"] == (
        "Tune only when the trained model's test AUPR reaches this."
    )


def test_caching_is_off_on_every_task(spec):
    executed = 0
    for owner, key, task in all_tasks(spec):
        if task["taskInfo"]["name"] in DISPLAY_NAMES:
            executed += 1
            assert "cachingOptions" in task, f"{owner}/{key} has no cachingOptions"
        # Control-flow groups carry no cachingOptions; none may enable caching either.
        assert task.get("cachingOptions", {}).get("enableCache", False) is False, (owner, key)
    assert executed == len(DISPLAY_NAMES)


def test_every_task_has_a_display_name(spec):
    tasks = executor_tasks(spec)
    assert set(tasks) == DISPLAY_NAMES
    groups = {}
    for owner, key, task in all_tasks(spec):
        name = task["taskInfo"]["name"]
        if name in DISPLAY_NAMES:
            assert name != key
            assert re.fullmatch(r"[A-Z][a-z]+( [a-z]+)+", name), name
        elif key.startswith("condition-branches-"):
            # kfp's own wrapper around If/Else; it cannot be named and never shows as a step.
            assert name == key
        else:
            groups[key] = (owner, name)
    assert sorted(name for _, name in groups.values()) == sorted(
        [builder.TUNING_ON_NAME, builder.TUNING_OFF_NAME, builder.GATE_NAME, builder.SKIP_NAME]
    )


def groups_by_name(spec: dict) -> dict[str, dict]:
    return {task["taskInfo"]["name"]: task for _, _, task in all_tasks(spec)}


def test_tuning_switch_is_its_own_branch(spec):
    groups = groups_by_name(spec)
    condition = "inputs.parameter_values['pipelinechannel--tuning'] == true"
    assert groups[builder.TUNING_ON_NAME]["triggerPolicy"]["condition"] == condition
    assert groups[builder.TUNING_OFF_NAME]["triggerPolicy"]["condition"] == f"!({condition})"
    branches = spec["root"]["dag"]["tasks"]["condition-branches-1"]["inputs"]["parameters"]
    assert branches["pipelinechannel--tuning"] == {"componentInputParameter": "tuning"}


def test_gate_compares_training_aupr_with_the_threshold(spec):
    groups = groups_by_name(spec)
    gate, skip = groups[builder.GATE_NAME], groups[builder.SKIP_NAME]
    evaluate_key = next(
        key
        for key, task in spec["root"]["dag"]["tasks"].items()
        if task["taskInfo"]["name"] == "Evaluate trained model"
    )
    channel = f"pipelinechannel--{evaluate_key}-Output"
    condition = (
        f"inputs.parameter_values['{channel}'] >= "
        "inputs.parameter_values['pipelinechannel--aupr_threshold']"
    )
    assert gate["triggerPolicy"]["condition"] == condition
    assert skip["triggerPolicy"]["condition"] == f"!({condition})"
    # The channels are the training evaluation's float output and the pipeline parameter.
    (inner,) = [
        task
        for _, key, task in all_tasks(spec)
        if key.startswith("condition-branches-") and key != "condition-branches-1"
    ]
    assert inner["inputs"]["parameters"][channel] == {"componentInputParameter": channel}
    branches = spec["root"]["dag"]["tasks"]["condition-branches-1"]["inputs"]["parameters"]
    assert branches[channel] == {
        "taskOutputParameter": {"outputParameterKey": "Output", "producerTask": evaluate_key}
    }
    assert branches["pipelinechannel--aupr_threshold"] == {
        "componentInputParameter": "aupr_threshold"
    }
    evaluate = spec["components"][
        spec["root"]["dag"]["tasks"][evaluate_key]["componentRef"]["name"]
    ]
    assert evaluate["outputDefinitions"]["parameters"]["Output"]["parameterType"] == (
        "NUMBER_DOUBLE"
    )


def test_tuning_and_skips_sit_in_their_branches(spec):
    groups = {name: task["componentRef"]["name"] for name, task in groups_by_name(spec).items()}
    inside = {name: owner for name, (owner, _) in executor_tasks(spec).items() if owner != "root"}
    assert inside == {
        "Tune hyperparameters": groups[builder.GATE_NAME],
        "Evaluate tuned model": groups[builder.GATE_NAME],
        "Record tuning skipped below the threshold": groups[builder.SKIP_NAME],
        "Record tuning switched off": groups[builder.TUNING_OFF_NAME],
    }


@pytest.mark.parametrize("step", sorted(STEPS))
def test_each_dataproc_step_takes_its_batch_whole(spec, step):
    """GCPC's Dataproc launcher, given the Batch ``pipeline_params`` built (ttl included)."""
    name, gated = STEPS[step]
    owner, task = executor_tasks(spec)[step]
    assert (owner != "root") == gated
    component = spec["components"][task["componentRef"]["name"]]
    container = spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
    assert container["command"][-1].endswith("dataproc.create_pyspark_batch.launcher")
    assert container["image"].startswith("gcr.io/ml-pipeline/google-cloud-pipeline-components:")
    args = container["args"]
    assert args[args.index("--payload") + 1] == "{{$.inputs.parameters['batch']}}"
    assert task["inputs"]["parameters"] == {
        "project": wired("project", gated),
        "location": wired("region", gated),
        "batch_id": wired(f"{name}_batch_id", gated),
        "batch": wired(f"{name}_batch", gated),
    }


def test_evaluations_read_their_runs_metrics(spec):
    tasks = executor_tasks(spec)
    for step, parameter in [
        ("Evaluate trained model", "training_metrics_uri"),
        ("Evaluate tuned model", "tuning_metrics_uri"),
        ("Record tuning skipped below the threshold", "tuning_metrics_uri"),
        ("Record tuning switched off", "tuning_metrics_uri"),
    ]:
        owner, task = tasks[step]
        assert task["inputs"]["parameters"]["metrics_uri"] == wired(parameter, owner != "root")


def test_no_input_holds_a_placeholder_inside_a_value(spec):
    """Every input a step gets is a parameter or a task output taken whole (kubeflow/pipelines
    #12040: a placeholder inside a longer string in a list or struct is not always resolved)."""
    for _owner, _key, task in all_tasks(spec):
        for given in task.get("inputs", {}).get("parameters", {}).values():
            assert "{{" not in yaml.safe_dump(given.get("runtimeValue", {})), task["taskInfo"]


def test_step_order(spec):
    tasks = executor_tasks(spec)
    key = {name: k for _, k, t in all_tasks(spec) for name in [t["taskInfo"]["name"]]}

    def after(step):
        return set(tasks[step][1].get("dependentTasks", []))

    assert after("Preprocess raw customers") == set()
    assert after("Register managed dataset") == {key["Preprocess raw customers"]}
    assert after("Train random forest") == {key["Preprocess raw customers"]}
    assert after("Evaluate trained model") == {key["Train random forest"]}
    assert after("Evaluate tuned model") == {key["Tune hyperparameters"]}


def test_dataset_op_reads_the_training_table(spec):
    owner, task = executor_tasks(spec)["Register managed dataset"]
    assert owner == "root"
    inputs = task["inputs"]["parameters"]
    assert inputs["bq_source"] == wired("training_table_uri")
    assert inputs["display_name"] == wired("dataset_display_name")
    assert inputs["labels"] == wired("labels")
    assert inputs["project"] == wired("project")
    assert inputs["location"] == wired("region")
    assert "gcs_source" not in inputs
    component = spec["components"][task["componentRef"]["name"]]
    command = spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
    assert "TabularDataset" in command["args"] + command.get("command", [])


def without_descriptions(node):
    if isinstance(node, dict):
        return {k: without_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [without_descriptions(v) for v in node]
    return node


def test_template_holds_no_project_specific_values(spec):
    # Parameter descriptions and the embedded component code mention the URI schemes; every
    # value a run receives (defaults, constants, wiring, images) must not.
    runtime = {k: v for k, v in spec.items() if k != "deploymentSpec"}
    text = yaml.safe_dump(without_descriptions(runtime))
    assert "componentInputParameter" in text  # the dump holds the wiring
    assert "gs://" not in text
    assert "bq://" not in text
    images = [e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()]
    assert set(images) <= {
        "python:3.11-slim",
        "gcr.io/ml-pipeline/google-cloud-pipeline-components:2.22.0",
    }
    raw = TEMPLATE.read_text()
    for marker in ("PROJECT_ID", "YOUR_", "<project>", "CHANGEME", "REPLACE"):
        assert marker not in raw, marker
    assert "defaultPipelineRoot" not in raw  # each run supplies its pipeline_root


def test_executors_do_not_pip_install_at_run_time_locally():
    local_eval = builder.c.local_component(builder.c.skip_tuning, [builder.c.write_file])
    command = " ".join(local_eval.component_spec.implementation.container.command)
    assert "pip install" not in command
