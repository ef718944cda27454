"""The Composer deploy: its exact steps (dry run), how a real run goes and stops, its input checks.

Nothing here talks to Google Cloud: a dry run runs no command, and real runs get a fake
``subprocess.run`` that answers like gcloud.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from churn_airflow import composer_deploy, scoring, settings
from churn_airflow.airflow_setup import POOLS
from pipeline.compile import TEMPLATE
from pipeline.params import Environment

REPO = settings.REPO
ENV_NAME, LOCATION, PROJECT = "churn-prod", "europe-west4", "acme-churn"
BUCKETS = {
    "data_bucket": "acme-churn-data",
    "model_bucket": "acme-churn-models",
    "code_bucket": "acme-churn-code",
}
GIVEN = {  # no --region (it defaults to --location), no history server, no image
    "project": PROJECT,
    **BUCKETS,
    "service_account": "churn-runtime@acme-churn.iam.gserviceaccount.com",
    "subnetwork_uri": "projects/acme-churn/regions/europe-west4/subnetworks/dataproc",
    "runtime_version": "2.3",
}
ARGS = [
    "--environment",
    ENV_NAME,
    "--location",
    LOCATION,
    *(word for name, value in GIVEN.items() for word in (f"--{name.replace('_', '-')}", value)),
]
ENV_BUCKET = "gs://europe-west4-churn-prod-1a2b3c4d-bucket"
DESCRIBE = ["gcloud", "composer", "environments", "describe"]


def gcp_env() -> Environment:
    return Environment.gcp(PROJECT, LOCATION, *BUCKETS.values())


def expected_steps(bucket: str, backend_set: bool = False) -> list[list[str]]:
    """Every command of a deploy with ARGS, in order; URIs come from the code that reads them."""
    where = [ENV_NAME, "--location", LOCATION, "--project", PROJECT]
    run = ["gcloud", "composer", "environments", "run", *where]
    env = gcp_env()
    template_uri = settings.template_path().replace(
        settings.template("code_bucket"), BUCKETS["code_bucket"]
    )
    variables = {**GIVEN, "region": LOCATION}
    update = ["gcloud", "composer", "environments", "update", *where]
    steps = [] if backend_set else [[*update, "--update-env-variables=CHURN_BACKEND=gcp"]]
    steps += [
        [*run, "variables", "set", "--", f"churn_{name}", variables[name]]
        for name in settings.GCP_SETTINGS
        if name in variables
    ]
    return [
        *steps,
        [*run, "pools", "set", "--", settings.REGISTRY_POOL, "1", POOLS[settings.REGISTRY_POOL][1]],
        [*run, "connections", "delete", "--", "google_cloud_default"],
        [*run, "connections", "add", "--", "google_cloud_default", "--conn-type",
         "google_cloud_platform", "--conn-extra", json.dumps({"project": PROJECT})],
        [sys.executable, "spark_jobs/package_zip.py", "--output", "dist/churn_ml.zip"],
        ["gcloud", "storage", "cp", "dist/churn_ml.zip", *env.python_file_uris],
        ["gcloud", "storage", "cp", "spark_jobs/preprocess.py", "spark_jobs/train.py",
         "spark_jobs/tune.py", "spark_jobs/score.py", f"{env.code_uri}/"],
        ["gcloud", "storage", "cp", str(TEMPLATE.relative_to(REPO)), template_uri],
        ["gcloud", "storage", "cp", "plugins/.airflowignore", f"{bucket}/plugins/"],
        ["gcloud", "storage", "rsync", "--recursive", "--delete-unmatched-destination-objects",
         "--exclude=.*__pycache__.*", "plugins/churn_airflow", f"{bucket}/plugins/churn_airflow"],
        ["gcloud", "storage", "cp", "pipeline/__init__.py", "pipeline/params.py",
         f"{bucket}/plugins/pipeline/"],
        ["gcloud", "storage", "cp", "spark_jobs/churn_ml/__init__.py",
         "spark_jobs/churn_ml/grids.py", "spark_jobs/churn_ml/layout.py",
         "spark_jobs/churn_ml/lineage.py", f"{bucket}/plugins/churn_ml/"],
        ["gcloud", "storage", "cp", "dags/customer_churn_batch_scoring.py",
         "dags/customer_churn_training.py", f"{bucket}/dags/"],
    ]  # fmt: skip


def listed_steps(out: str) -> list[tuple[str, list[str]]]:
    """(description, argv) of each numbered step a dry run printed."""
    lines = out.splitlines()
    steps = []
    for line, command in itertools.pairwise(lines):
        if match := re.fullmatch(r" ?(\d+)\. (.+)", line):
            assert int(match[1]) == len(steps) + 1, line
            assert command.startswith("    "), command
            steps.append((match[2], shlex.split(command)))
    return steps


@pytest.fixture
def no_commands(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"a command ran: {args}")

    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)


def dry_run(capsys) -> list[tuple[str, list[str]]]:
    composer_deploy.main([*ARGS, "--dry-run"])
    out = capsys.readouterr().out
    assert "customer_churn_training.yaml matches a fresh compile" in out
    assert shlex.join([*DESCRIBE, ENV_NAME, "--location", LOCATION, "--project", PROJECT,
                       "--format=json"]) in out  # fmt: skip
    return listed_steps(out)


def test_dry_run_prints_every_step_and_runs_none(capsys, no_commands):
    steps = dry_run(capsys)
    assert [argv for _, argv in steps] == expected_steps(composer_deploy.BUCKET_PLACEHOLDER)
    descriptions = [description for description, _ in steps]
    assert all(descriptions) and len(set(descriptions)) == len(descriptions)


def test_dry_run_as_a_command(subprocess_env, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "churn_airflow.composer_deploy", *ARGS, "--dry-run"],
        cwd=tmp_path,  # any folder: paths in the steps are relative to the repo
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    steps = [argv for _, argv in listed_steps(done.stdout)]
    assert steps == expected_steps(composer_deploy.BUCKET_PLACEHOLDER)
    assert not list(tmp_path.iterdir())


def find_constants(node, key: str):
    """Every runtime constant given to the input ``key`` anywhere in a compiled spec."""
    if isinstance(node, dict):
        value = node.get(key)
        if isinstance(value, dict) and "runtimeValue" in value:
            yield value["runtimeValue"]["constant"]
        for child in node.values():
            yield from find_constants(child, key)
    elif isinstance(node, list):
        for child in node:
            yield from find_constants(child, key)


def test_uploads_land_where_the_batches_and_the_dag_read_them(capsys):
    uploaded = set()
    for _, argv in dry_run(capsys):
        if argv[:3] == ["gcloud", "storage", "cp"]:
            *sources, target = argv[3:]
            folder = target.endswith("/")
            uploaded |= {target + Path(s).name if folder else target for s in sources}
    env = gcp_env()
    code_uri = "{{$.inputs.parameters['pipelinechannel--code_uri']}}"
    spec = yaml.safe_load(TEMPLATE.read_text())
    mains = {
        m.replace(code_uri, env.code_uri) for m in find_constants(spec, "main_python_file_uri")
    }
    assert len(mains) == 3  # preprocess, train, tune
    batch = scoring.dataproc_batch(env, "20261129", [])["pyspark_batch"]
    mains.add(batch["main_python_file_uri"])
    assert batch["python_file_uris"] == list(env.python_file_uris)
    template = settings.template_path().replace(
        settings.template("code_bucket"), BUCKETS["code_bucket"]
    )
    assert mains | set(env.python_file_uris) | {template} <= uploaded
    for uri in mains:  # each uploaded from the job of that name
        assert (REPO / "spark_jobs" / Path(uri).name).is_file()


class FakeGcloud:
    """Records each command; answers ``describe`` like gcloud; fails the commands in ``failing``."""

    def __init__(self, failing=(), backend: str | None = None):
        self.calls: list[tuple[list[str], Path | None]] = []
        self.failing = [list(argv) for argv in failing]
        self.backend = backend

    def __call__(self, argv, check=False, cwd=None, capture_output=False, text=False):
        argv = list(argv)
        self.calls.append((argv, cwd))
        if argv[:4] == DESCRIBE:
            software = {"envVariables": {"CHURN_BACKEND": self.backend}} if self.backend else {}
            config = {"dagGcsPrefix": f"{ENV_BUCKET}/dags", "softwareConfig": software}
            return subprocess.CompletedProcess(argv, 0, json.dumps({"config": config}), "")
        code = int(argv in self.failing)
        if check and code:
            raise subprocess.CalledProcessError(code, argv)
        return subprocess.CompletedProcess(argv, code)

    def commands(self) -> list[list[str]]:
        return [argv for argv, _ in self.calls]


@pytest.fixture
def gcloud(monkeypatch):
    def install(**kwargs) -> FakeGcloud:
        fake = FakeGcloud(**kwargs)
        monkeypatch.setattr(subprocess, "run", fake)
        return fake

    return install


@pytest.mark.parametrize("backend", [None, "local", "gcp"])
def test_real_run_looks_up_the_bucket_then_runs_every_step(capsys, gcloud, backend):
    fake = gcloud(backend=backend)
    composer_deploy.main(ARGS)
    steps = expected_steps(ENV_BUCKET, backend_set=backend == "gcp")
    assert fake.commands()[0][:4] == DESCRIBE
    assert fake.commands()[1:] == steps
    assert {cwd for _, cwd in fake.calls[1:]} == {REPO}
    out = capsys.readouterr().out
    assert ("CHURN_BACKEND=gcp is already set" in out) == (backend == "gcp")
    assert f"step 1/{len(steps)}: " in out
    assert f"step {len(steps)}/{len(steps)}: upload the DAGs" in out
    assert out.rstrip().endswith(f"deployed to {ENV_NAME}")


@pytest.mark.parametrize("failing", ["variables", "pools", "churn_ml.zip", "dags/"])
def test_a_failing_step_stops_the_deploy_and_names_itself(capsys, gcloud, failing):
    steps = expected_steps(ENV_BUCKET)
    k = next(i for i, argv in enumerate(steps, 1) if any(failing in word for word in argv))
    fake = gcloud(failing=[steps[k - 1]])
    with pytest.raises(SystemExit) as stopped:
        composer_deploy.main(ARGS)
    assert fake.commands()[1:] == steps[:k]  # nothing after step k ran
    description = capsys.readouterr().out.splitlines()[-1].split(": ", 1)[1]
    assert str(stopped.value) == (
        f"deploy failed: step {k}/{len(steps)} ({description}) failed: "
        f"{shlex.join(steps[k - 1])}: exit status 1"
    )


def test_a_missing_connection_does_not_stop_the_deploy(capsys, gcloud):
    steps = expected_steps(ENV_BUCKET)
    delete = next(argv for argv in steps if "delete" in argv)
    fake = gcloud(failing=[delete])
    composer_deploy.main(ARGS)
    assert fake.commands()[1:] == steps
    assert capsys.readouterr().out.rstrip().endswith(f"deployed to {ENV_NAME}")


@pytest.mark.parametrize(
    "answer, reason",
    [
        (
            subprocess.CalledProcessError(1, DESCRIBE, "", "ERROR: NOT_FOUND: no such environment"),
            "exit status 1: ERROR: NOT_FOUND: no such environment",
        ),
        (FileNotFoundError(2, "No such file or directory: 'gcloud'"), "No such file"),
        (subprocess.CompletedProcess(DESCRIBE, 0, "{}", ""), "'config'"),
    ],
)
def test_an_unreadable_environment_stops_before_any_step(monkeypatch, answer, reason):
    calls = []

    def describe(argv, **kwargs):
        calls.append(argv)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(subprocess, "run", describe)
    with pytest.raises(SystemExit) as stopped:
        composer_deploy.main(ARGS)
    assert len(calls) == 1
    assert str(stopped.value).startswith(
        f"deploy failed: could not read the environment: {shlex.join(calls[0])}: "
    )
    assert reason in str(stopped.value)


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--code-bucket", "gs://acme-churn-code", "is not a bucket name: drop the gs://"),
        ("--data-bucket", "Acme_Data", "is not a bucket name"),
        ("--project", "Acme", "is not a project id"),
        ("--location", "europe west4", "is not a region"),
        ("--region", "eu", "is not a region"),
        ("--environment", "Churn_Prod", "is not a Composer environment name"),
        ("--service-account", "churn-runtime", "is not a service account email"),
        ("--runtime-version", "latest", "is not a Dataproc runtime version"),
    ],
)
def test_bad_input_is_refused_before_anything_runs(capsys, no_commands, flag, value, message):
    with pytest.raises(SystemExit) as stopped:
        composer_deploy.main([*ARGS, flag, value])
    assert stopped.value.code == 2
    assert f"argument {flag}: {value!r} {message}" in capsys.readouterr().err


def test_required_settings_must_be_given(capsys, no_commands):
    without = ARGS[: ARGS.index("--code-bucket")] + ARGS[ARGS.index("--code-bucket") + 2 :]
    with pytest.raises(SystemExit) as stopped:
        composer_deploy.main(without)
    assert stopped.value.code == 2
    assert "the following arguments are required: --code-bucket" in capsys.readouterr().err


def test_a_stale_template_stops_before_anything_runs(monkeypatch, no_commands):
    import pipeline.compile

    def outdated(path: Path) -> Path:
        path.write_text(TEMPLATE.read_text().replace("customer-churn-training", "renamed"))
        return path

    monkeypatch.setattr(pipeline.compile, "compile_template", outdated)
    with pytest.raises(
        SystemExit, match=r"customer_churn_training.yaml is stale: run `make compile`"
    ):
        composer_deploy.main([*ARGS, "--dry-run"])


PROBE = """
import json, sys
from airflow import plugins_manager
from airflow.dag_processing.dagbag import DagBag

plugin_errors = plugins_manager.get_import_errors()  # imports plugins/ but .airflowignore
ours = ("churn_airflow", "pipeline", "churn_ml")
loaded_as_plugins = sorted(m for m in sys.modules if m.split(".")[0] in ours)
bag = DagBag(sys.argv[1])
import churn_airflow.dataproc_operators, churn_airflow.promotion, churn_airflow.registry
import churn_airflow.run_ids, churn_airflow.scoring, churn_airflow.vertex_operators
import churn_ml.layout, pipeline.params
print(json.dumps({
    "plugin_errors": plugin_errors,
    "loaded_as_plugins": loaded_as_plugins,
    "dag_errors": bag.import_errors,
    "dags": sorted(bag.dag_ids),
    "files": sorted({m.__file__ for m in (churn_airflow, pipeline.params, churn_ml.layout)}),
    "heavy": sorted(m for m in sys.modules if m.split(".")[0] in ("kfp", "pyspark")),
}))
"""


@pytest.mark.slow
def test_what_goes_to_the_environment_bucket_imports_there(capsys, tmp_path):
    """The DAGs and every gcp-backend task import from the uploaded dags/ and plugins/ alone."""
    placeholder = composer_deploy.BUCKET_PLACEHOLDER + "/"
    for _, argv in dry_run(capsys):  # lay out what the steps upload, as Composer mounts it
        if argv[:3] == ["gcloud", "storage", "rsync"] and argv[-1].startswith(placeholder):
            shutil.copytree(
                REPO / argv[-2],
                tmp_path / argv[-1].removeprefix(placeholder),
                ignore=shutil.ignore_patterns("__pycache__"),
            )
        elif argv[:3] == ["gcloud", "storage", "cp"] and argv[-1].startswith(placeholder):
            folder = tmp_path / argv[-1].removeprefix(placeholder)
            folder.mkdir(parents=True, exist_ok=True)
            for source in argv[3:-1]:
                shutil.copy(REPO / source, folder)
    dags, plugins = tmp_path / "dags", tmp_path / "plugins"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(dags), str(plugins)]),  # not the repo
        "CHURN_BACKEND": "gcp",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(dags)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["plugin_errors"] == {}
    assert found["loaded_as_plugins"] == []  # the Vertex module alone costs ~10 s per process
    assert found["dag_errors"] == {}
    assert found["dags"] == ["customer_churn_batch_scoring", "customer_churn_training"]
    assert all(f.startswith(str(plugins)) for f in found["files"]), found["files"]
    assert found["heavy"] == []  # kfp and pyspark need not be installed on Composer
