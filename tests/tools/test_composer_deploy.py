"""The Composer deploy: its preflight, its exact steps, how a real run goes and stops, its checks.

Nothing here talks to Google Cloud. gcloud is a stand-in that answers like gcloud (in-process
for ``subprocess.run``, or a script on PATH for the command typed as written), and the
environment's Airflow REST API is a local HTTP server that validates each request with
Airflow's own request models and answers with its response models.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from unittest import mock

import pytest

from churn_airflow import scoring, settings
from churn_core.pipeline_params import REPO, Environment, parameter_values
from churn_core.stages import PIPELINE
from churn_tools import composer_deploy
from churn_tools.airflow_setup import POOLS
from pipeline.compile import TEMPLATE

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
    "scoring_service_account": "churn-scoring@acme-churn.iam.gserviceaccount.com",
    "subnetwork_uri": "projects/acme-churn/regions/europe-west4/subnetworks/dataproc",
    "runtime_version": "3.0",
}
ARGS = [
    "--environment",
    ENV_NAME,
    "--location",
    LOCATION,
    *(word for name, value in GIVEN.items() for word in (f"--{name.replace('_', '-')}", value)),
]
ENV_BUCKET = "gs://europe-west4-churn-prod-1a2b3c4d-bucket"
IMAGE = "composer-3-airflow-3.1.0-build.2"
TOKEN = "ya29.deployer-token"
ENABLED = [
    "aiplatform.googleapis.com",
    "bigquery.googleapis.com",
    "bigquerystorage.googleapis.com",
    "composer.googleapis.com",
    "compute.googleapis.com",
    "dataproc.googleapis.com",
    "dataprocrm.googleapis.com",
    "storage.googleapis.com",
]
WHERE = [ENV_NAME, "--location", LOCATION, "--project", PROJECT]
DESCRIBE = ["gcloud", "composer", "environments", "describe", *WHERE, "--format=json"]
SERVICES = ["gcloud", "services", "list", "--enabled", "--project", PROJECT, "--format=json"]
BUCKET_CHECKS = [
    ["gcloud", "storage", "buckets", "describe", f"gs://{b}", "--format=json"]
    for b in BUCKETS.values()
]
TOKEN_READ = ["gcloud", "auth", "print-access-token"]
READS = [DESCRIBE, TOKEN_READ, SERVICES, *BUCKET_CHECKS]
BUCKET_NAMES = tuple(BUCKETS.values())
ENV_VARIABLES = {
    "CHURN_BACKEND": "gcp",
    "CHURN_PROJECT": PROJECT,
    "CHURN_REGION": LOCATION,
    "CHURN_DATA_BUCKET": BUCKETS["data_bucket"],
    "CHURN_MODEL_BUCKET": BUCKETS["model_bucket"],
    "CHURN_CODE_BUCKET": BUCKETS["code_bucket"],
    "CHURN_SERVICE_ACCOUNT": GIVEN["service_account"],
    "CHURN_SCORING_SERVICE_ACCOUNT": GIVEN["scoring_service_account"],
    "CHURN_SUBNETWORK_URI": GIVEN["subnetwork_uri"],
    "CHURN_RUNTIME_VERSION": "3.0",
}


def gcp_env() -> Environment:
    return Environment.gcp(PROJECT, LOCATION, *BUCKETS.values())


def description(airflow_uri: str, image=IMAGE, triggerers=1, env_variables=None) -> dict:
    """What ``gcloud composer environments describe --format=json`` prints, in part."""
    return {
        "name": f"projects/{PROJECT}/locations/{LOCATION}/environments/{ENV_NAME}",
        "config": {
            "dagGcsPrefix": f"{ENV_BUCKET}/dags",
            "airflowUri": airflow_uri,
            "softwareConfig": {"imageVersion": image, "envVariables": env_variables or {}},
            "workloadsConfig": {"triggerer": {"count": triggerers, "cpu": 0.5, "memoryGb": 1}},
        },
    }


def gcloud_answers(airflow_uri, enabled=ENABLED, buckets=BUCKET_NAMES, **described):
    """argv -> (exit status, stdout, stderr) of every read-only command the deploy runs."""
    answers = {
        tuple(DESCRIBE): (0, json.dumps(description(airflow_uri, **described)), ""),
        tuple(SERVICES): (0, json.dumps([{"config": {"name": n}} for n in enabled]), ""),
        ("gcloud", "auth", "print-access-token"): (0, TOKEN + "\n", ""),
    }
    for argv, name in zip(BUCKET_CHECKS, BUCKETS.values(), strict=True):
        missing = (1, "", f"ERROR: gs://{name} not found: 404.")
        answers[tuple(argv)] = (0, json.dumps({"name": name}), "") if name in buckets else missing
    return answers


POOL_BODY = {
    "actions": [
        {
            "action": "create",
            "entities": [
                {
                    "name": "churn_registry",
                    "slots": 1,
                    "description": POOLS["churn_registry"][1],
                    "include_deferred": False,
                }
            ],
            "action_on_existence": "overwrite",  # a second deploy resets the pool
        }
    ]
}


def pool_request(airflow_uri: str) -> str:
    return f"PATCH {airflow_uri}/api/v2/pools {json.dumps(POOL_BODY)}"


def dag_template_uri() -> str:
    """The template the DAGs read, under the env vars the deploy sets."""
    with mock.patch.dict(os.environ, ENV_VARIABLES):
        return settings.template_path()


def expected_steps(airflow_uri: str, env_variables_set: bool = False) -> list[str]:
    """Every step of a deploy with ARGS, in order, as printed; URIs come from the code."""
    env = gcp_env()
    template_uri = dag_template_uri()
    update = ["gcloud", "composer", "environments", "update", *WHERE]
    variables = ",".join(f"{k}={v}" for k, v in ENV_VARIABLES.items())
    steps = [] if env_variables_set else [[*update, f"--update-env-variables={variables}"]]
    commands = [
        [sys.executable, "spark_jobs/package_zip.py", "--output", "dist/churn_ml.zip"],
        ["gcloud", "storage", "cp", "dist/churn_ml.zip", *env.python_file_uris],
        ["gcloud", "storage", "cp", "spark_jobs/preprocess.py", "spark_jobs/train.py",
         "spark_jobs/tune.py", "spark_jobs/score.py", f"{env.code_uri}/"],
        ["gcloud", "storage", "cp", str(TEMPLATE.relative_to(REPO)), template_uri],
        ["gcloud", "storage", "cp", "dags/.airflowignore", f"{ENV_BUCKET}/dags/"],
        *(
            ["gcloud", "storage", "rsync", "--recursive", "--delete-unmatched-destination-objects",
             "--exclude=.*__pycache__.*", folder, f"{ENV_BUCKET}/dags/{Path(folder).name}"]
            for folder in ("plugins/churn_airflow", "spark_jobs/churn_core")
        ),
        ["gcloud", "storage", "cp", "dags/customer_churn_batch_scoring.py",
         "dags/customer_churn_rollback.py", "dags/customer_churn_training.py",
         f"{ENV_BUCKET}/dags/"],
    ]  # fmt: skip
    return [
        *(shlex.join(s) for s in steps),
        pool_request(airflow_uri),
        *(shlex.join(c) for c in commands),
    ]


def listed_steps(out: str) -> list[tuple[str, str]]:
    """(description, command or request) of each numbered step a dry run printed."""
    lines = out.splitlines()
    steps = []
    for line, command in itertools.pairwise(lines):
        if match := re.fullmatch(r" ?(\d+)\. (.+)", line):
            assert int(match[1]) == len(steps) + 1, line
            assert command.startswith("    "), command
            steps.append((match[2], command.strip()))
    return steps


# What the environment reports: the tested versions, and more providers than one page holds.
TESTED_VERSIONS = {
    "apache-airflow": "3.3.2",
    **{f"apache-airflow-providers-extra-{i:03}": "1.0.0" for i in range(120)},
    "apache-airflow-providers-google": "22.8.0",
}


class AirflowApi:
    """The environment's Airflow REST API: checks each request as Airflow 3.3 would."""

    def __init__(self):
        self.requests: list[dict] = []  # the changes
        self.reads: list[str] = []
        self.status = 200
        self.versions = dict(TESTED_VERSIONS)
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                from urllib.parse import parse_qs, urlsplit

                from airflow.api_fastapi.core_api.datamodels.providers import (
                    ProviderCollectionResponse,
                )
                from airflow.api_fastapi.core_api.datamodels.version import VersionInfo

                api.reads.append(self.path)
                url = urlsplit(self.path)
                if url.path == "/api/v2/version":
                    answer = VersionInfo(version=api.versions["apache-airflow"], git_version=None)
                else:
                    assert url.path == "/api/v2/providers", self.path
                    query = {k: int(v[0]) for k, v in parse_qs(url.query).items()}
                    providers = [
                        {
                            "package_name": n,
                            "description": n,
                            "version": v,
                            "documentation_url": None,
                        }
                        for n, v in api.versions.items()
                        if n != "apache-airflow"
                    ]
                    providers = [{**p, "documentation_url": None} for p in providers]
                    answer = ProviderCollectionResponse(
                        providers=providers[query["offset"] :][: query["limit"]],
                        total_entries=len(providers),
                    )
                data = answer.model_dump_json().encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PATCH(self):
                from airflow.api_fastapi.core_api.datamodels.common import (
                    BulkActionResponse,
                    BulkBody,
                    BulkResponse,
                )
                from airflow.api_fastapi.core_api.datamodels.pools import PoolBody

                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                api.requests.append(
                    {"path": self.path, "auth": self.headers["Authorization"], "body": body}
                )
                parsed = BulkBody[PoolBody].model_validate(body)  # raises on a bad request
                names = [p.pool for a in parsed.actions for p in a.entities]
                answer = BulkResponse(create=BulkActionResponse(success=names)).model_dump()
                if api.status != 200:
                    answer = {"detail": "Forbidden"}
                data = json.dumps(answer).encode()
                self.send_response(api.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture(autouse=True)
def _fresh_token():
    """Each deploy asks gcloud for its token once."""
    composer_deploy.access_token.cache_clear()


@pytest.fixture
def airflow_api():
    api = AirflowApi()
    # a short poll: shutdown() waits for it, once per test
    thread = threading.Thread(target=api.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield api
    api.server.shutdown()
    api.server.server_close()


class FakeGcloud:
    """Records each command; answers the read-only ones; fails the commands in ``failing``."""

    def __init__(self, answers: dict, failing=()):
        self.answers = answers
        self.calls: list[tuple[list[str], Path | None]] = []
        self.failing = [list(argv) for argv in failing]

    def __call__(self, argv, check=False, cwd=None, capture_output=False, text=False):
        argv = list(argv)
        self.calls.append((argv, cwd))
        code, out, err = self.answers.get(tuple(argv), (int(argv in self.failing), "", ""))
        if check and code:
            raise subprocess.CalledProcessError(code, argv, out, err)
        return subprocess.CompletedProcess(argv, code, out, err)

    def commands(self) -> list[list[str]]:
        return [argv for argv, _ in self.calls]

    def changes(self) -> list[list[str]]:
        """The commands that were not reads."""
        return [argv for argv in self.commands() if tuple(argv) not in self.answers]


@pytest.fixture
def gcloud(monkeypatch, airflow_api):
    def install(failing=(), **answers) -> FakeGcloud:
        fake = FakeGcloud(gcloud_answers(airflow_api.uri, **answers), failing)
        monkeypatch.setattr(subprocess, "run", fake)
        return fake

    return install


def dry_run(capsys) -> list[tuple[str, str]]:
    composer_deploy.main([*ARGS, "--dry-run"])
    out = capsys.readouterr().out
    assert "customer_churn_training.yaml matches a fresh compile" in out
    assert f"preflight passed: {ENV_NAME} runs {IMAGE}" in out
    return listed_steps(out)


# --- dry run ------------------------------------------------------------------------------------


def test_dry_run_runs_the_preflight_only_and_prints_every_step(capsys, gcloud, airflow_api):
    fake = gcloud()
    steps = dry_run(capsys)
    assert [shown for _, shown in steps] == expected_steps(airflow_api.uri)
    assert fake.commands() == READS  # read-only: nothing else ran
    assert airflow_api.requests == []
    descriptions = [description for description, _ in steps]
    assert all(descriptions) and len(set(descriptions)) == len(descriptions)


FAKE_GCLOUD = """#!{python}
import json, sys
answers = json.load(open({answers!r}))
code, out, err = answers.get(json.dumps(sys.argv[1:]), [1, "", "not a read: " + str(sys.argv)])
sys.stdout.write(out); sys.stderr.write(err); sys.exit(code)
"""


def test_dry_run_as_a_command(subprocess_env, tmp_path, airflow_api):
    """The command the docs give, typed as written, with a gcloud on PATH that answers reads."""
    bin_dir, work = tmp_path / "bin", tmp_path / "work"
    bin_dir.mkdir()
    work.mkdir()
    answers = {
        json.dumps(list(argv[1:])): list(a) for argv, a in gcloud_answers(airflow_api.uri).items()
    }
    (tmp_path / "answers.json").write_text(json.dumps(answers))
    script = bin_dir / "gcloud"
    script.write_text(
        FAKE_GCLOUD.format(python=sys.executable, answers=str(tmp_path / "answers.json"))
    )
    script.chmod(0o755)
    done = subprocess.run(
        [sys.executable, "-m", "churn_tools.composer_deploy", *ARGS, "--dry-run"],
        cwd=work,  # any folder: paths in the steps are relative to the repo
        env={**subprocess_env, "PATH": f"{bin_dir}{os.pathsep}{subprocess_env['PATH']}"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert [shown for _, shown in listed_steps(done.stdout)] == expected_steps(airflow_api.uri)
    assert not list(work.iterdir())


def test_uploads_land_where_the_batches_and_the_dag_read_them(capsys, gcloud):
    gcloud()
    uploaded = set()
    for _, shown in dry_run(capsys):
        argv = shown.split(" ") if shown.startswith("PATCH") else shlex.split(shown)
        if argv[:3] == ["gcloud", "storage", "cp"]:
            *sources, target = argv[3:]
            folder = target.endswith("/")
            uploaded |= {target + Path(s).name if folder else target for s in sources}
    env = gcp_env()
    values = parameter_values(env, "20261129", dt.date(2026, 11, 29), "k7f2q-1")
    mains = {
        values[f"{stage.name}_batch"]["pyspark_batch"]["main_python_file_uri"] for stage in PIPELINE
    }
    assert len(mains) == 3  # preprocess, train, tune
    batch = scoring.dataproc_batch(env, "20261129", [])["pyspark_batch"]
    mains.add(batch["main_python_file_uri"])
    assert batch["python_file_uris"] == list(env.python_file_uris)
    template = dag_template_uri()
    assert mains | set(env.python_file_uris) | {template} <= uploaded
    for uri in mains:  # each uploaded from the job of that name
        assert (REPO / "spark_jobs" / Path(uri).name).is_file()


# --- real runs ----------------------------------------------------------------------------------


def test_real_run_reads_checks_then_runs_every_step(capsys, gcloud, airflow_api):
    fake = gcloud()
    composer_deploy.main(ARGS)
    steps = expected_steps(airflow_api.uri)
    commands = [s for s in steps if not s.startswith("PATCH")]
    assert fake.commands()[: len(READS)] == READS
    assert [shlex.join(argv) for argv in fake.changes()] == commands
    assert {cwd for argv, cwd in fake.calls if tuple(argv) not in fake.answers} == {REPO}
    # the pool, through the Airflow REST API, with the deployer's own token, after the settings
    (call,) = airflow_api.requests
    assert call["path"] == "/api/v2/pools"
    assert call["auth"] == f"Bearer {TOKEN}"
    assert f"PATCH {airflow_api.uri}{call['path']} {json.dumps(call['body'])}" == steps[1]
    out = capsys.readouterr().out
    assert f"step 2/{len(steps)}: create pool churn_registry (Airflow REST API)" in out
    assert f"step {len(steps)}/{len(steps)}: upload the DAGs" in out
    assert out.rstrip().endswith(f"deployed to {ENV_NAME}")


def test_settings_already_in_place_are_not_set_again(capsys, gcloud, airflow_api):
    fake = gcloud(env_variables={**ENV_VARIABLES, "OTHER": "kept"})
    composer_deploy.main(ARGS)
    steps = expected_steps(airflow_api.uri, env_variables_set=True)
    assert [shlex.join(a) for a in fake.changes()] == [
        s for s in steps if not s.startswith("PATCH")
    ]
    assert not any("update" in argv for argv in fake.commands())  # Composer refuses a no-op


def test_one_changed_setting_updates_them_all_at_once(capsys, gcloud, airflow_api):
    fake = gcloud(env_variables={**ENV_VARIABLES, "CHURN_CODE_BUCKET": "old-code"})
    composer_deploy.main(ARGS)
    (update,) = [
        a for a in fake.changes() if a[:4] == ["gcloud", "composer", "environments", "update"]
    ]
    assert shlex.join(update) == expected_steps(airflow_api.uri)[0]


@pytest.mark.parametrize("failing", ["--update-env-variables", "churn_ml.zip", "dags/"])
def test_a_failing_step_stops_the_deploy_and_names_itself(capsys, gcloud, airflow_api, failing):
    steps = expected_steps(airflow_api.uri)
    k = next(i for i, shown in enumerate(steps, 1) if failing in shown)
    fake = gcloud(failing=[shlex.split(steps[k - 1])])
    with pytest.raises(SystemExit) as stopped:
        composer_deploy.main(ARGS)
    ran = [shlex.join(a) for a in fake.changes()]
    assert ran == [s for s in steps[:k] if not s.startswith("PATCH")]  # nothing after step k
    description = capsys.readouterr().out.splitlines()[-1].split(": ", 1)[1]
    assert str(stopped.value) == (
        f"deploy failed: step {k}/{len(steps)} ({description}) failed: {steps[k - 1]}: "
        "exit status 1"
    )


def test_a_refused_pool_request_stops_the_deploy(capsys, gcloud, airflow_api):
    airflow_api.status = 403
    fake = gcloud()
    with pytest.raises(SystemExit) as stopped:
        composer_deploy.main(ARGS)
    message = str(stopped.value)
    assert message.startswith("deploy failed: step 2/10 (create pool churn_registry")
    assert "HTTP 403" in message and "an Airflow role that may edit pools" in message
    assert not any("storage" in argv for argv in fake.changes())  # no upload after it


# --- preflight ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dry", [True, False])
@pytest.mark.parametrize(
    ("answers", "named"),
    [
        (
            {"image": "composer-3-airflow-2.10.5-build.12"},
            "churn-prod runs composer-3-airflow-2.10.5-build.12, not Cloud Composer 3 with "
            "Airflow 3 (composer-3-airflow-3.*)",
        ),
        (
            {"triggerers": 0},
            "churn-prod has no triggerer, which the deferrable tasks need: gcloud composer "
            "environments update churn-prod --location europe-west4 --project acme-churn "
            "--triggerer-count 1",
        ),
        (
            {
                "enabled": [
                    a
                    for a in ENABLED
                    if a not in ("dataprocrm.googleapis.com", "bigquerystorage.googleapis.com")
                ]
            },
            "APIs not enabled in acme-churn: bigquerystorage.googleapis.com, "
            "dataprocrm.googleapis.com (gcloud services enable bigquerystorage.googleapis.com "
            "dataprocrm.googleapis.com --project acme-churn)",
        ),
        (
            {"buckets": ("acme-churn-data", "acme-churn-code")},
            "the model bucket gs://acme-churn-models cannot be read: gcloud storage buckets "
            "describe gs://acme-churn-models --format=json: exit status 1: ERROR: "
            "gs://acme-churn-models not found: 404.",
        ),
    ],
)
def test_a_failed_preflight_changes_nothing_and_names_what_is_missing(
    gcloud, airflow_api, answers, named, dry
):
    fake = gcloud(**answers)
    with pytest.raises(SystemExit) as stopped:
        composer_deploy.main([*ARGS, *(["--dry-run"] if dry else [])])
    assert str(stopped.value) == f"deploy failed: preflight failed, nothing was changed: {named}"
    assert fake.commands() == READS
    assert airflow_api.requests == []


@pytest.mark.parametrize(
    ("versions", "named"),
    [
        (
            {"apache-airflow": "3.1.0"},
            "churn-prod runs apache-airflow 3.1.0; this package is tested with apache-airflow "
            "<3.4,>=3.3.2, apache-airflow-providers-google <23,>=22.8.0",
        ),
        (
            {"apache-airflow": "3.4.0", "apache-airflow-providers-google": "19.1.0"},
            "churn-prod runs apache-airflow 3.4.0 and apache-airflow-providers-google 19.1.0; "
            "this package is tested with apache-airflow <3.4,>=3.3.2, "
            "apache-airflow-providers-google <23,>=22.8.0",
        ),
        (
            {"apache-airflow-providers-google": None},
            "churn-prod runs apache-airflow-providers-google (not installed); this package is "
            "tested with apache-airflow <3.4,>=3.3.2, apache-airflow-providers-google <23,>=22.8.0",
        ),
    ],
)
def test_the_preflight_refuses_versions_outside_the_tested_range(
    gcloud, airflow_api, versions, named
):
    fake = gcloud()
    for name, version in versions.items():
        if version is None:
            del airflow_api.versions[name]
        else:
            airflow_api.versions[name] = version
    with pytest.raises(SystemExit) as stopped:
        composer_deploy.main(ARGS)
    assert str(stopped.value) == f"deploy failed: preflight failed, nothing was changed: {named}"
    assert fake.changes() == [] and airflow_api.requests == []


def test_the_tested_range_holds_the_pinned_versions():
    pins = dict(
        line.split("==")
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if line.startswith("apache-airflow") and "==" in line
    )
    for name, tested in composer_deploy.TESTED.items():
        assert pins[name] in tested, name


def test_the_preflight_reads_every_page_of_providers(capsys, gcloud, airflow_api):
    gcloud()
    dry_run(capsys)
    pages = [r for r in airflow_api.reads if r.startswith("/api/v2/providers")]
    assert pages == [
        "/api/v2/providers?limit=100&offset=0",
        "/api/v2/providers?limit=100&offset=100",
    ]


def test_the_preflight_names_every_problem_at_once(gcloud):
    gcloud(triggerers=0, enabled=[], buckets=())
    with pytest.raises(SystemExit) as stopped:
        composer_deploy.main(ARGS)
    problems = str(stopped.value).split(": ", 2)[2].split("; ")
    assert len(problems) == 5  # the triggerer, the APIs, three buckets


def test_a_custom_image_needs_artifact_registry(gcloud):
    gcloud()
    image = "europe-west4-docker.pkg.dev/acme-churn/churn/spark:1"
    with pytest.raises(SystemExit, match=r"APIs not enabled in acme-churn: artifactregistry"):
        composer_deploy.main([*ARGS, "--container-image", image])


@pytest.mark.parametrize(
    "answer, reason",
    [
        (
            subprocess.CalledProcessError(1, DESCRIBE, "", "ERROR: NOT_FOUND: no such environment"),
            "exit status 1: ERROR: NOT_FOUND: no such environment",
        ),
        (FileNotFoundError(2, "No such file or directory: 'gcloud'"), "No such file"),
        (subprocess.CompletedProcess(DESCRIBE, 0, "{}", ""), "no 'config' in its answer"),
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
    assert calls == [tuple(DESCRIBE)]
    assert str(stopped.value).startswith(
        f"deploy failed: could not read the environment: {shlex.join(DESCRIBE)}: "
    )
    assert reason in str(stopped.value)


# --- bad input ----------------------------------------------------------------------------------


@pytest.fixture
def no_commands(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"a command ran: {args}")

    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)


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
        ("--subnetwork-uri", "a,b", "is not a value without commas or spaces"),
    ],
)
def test_bad_input_is_refused_before_anything_runs(capsys, no_commands, flag, value, message):
    with pytest.raises(SystemExit) as stopped:
        composer_deploy.main([*ARGS, flag, value])
    assert stopped.value.code == 2
    assert f"argument {flag}: {value!r} {message}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--runtime-version", "2.3"],
            "argument --runtime-version: Dataproc runtime 2.3 ships Spark 3.5",
        ),
        (["--runtime-version", "latest"], "unknown Dataproc runtime version 'latest'"),
        (
            ["--spark-history-server", "projects/acme-churn/regions/europe-west4/clusters/phs"],
            "error: Dataproc runtime 3.0 does not support a Persistent History Server",
        ),
    ],
)
def test_a_runtime_the_jobs_cannot_use_is_refused(capsys, no_commands, extra, message):
    with pytest.raises(SystemExit) as stopped:
        composer_deploy.main([*ARGS, *extra])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


def test_required_settings_must_be_given(capsys, no_commands):
    without = ARGS[: ARGS.index("--service-account")] + ARGS[ARGS.index("--service-account") + 2 :]
    with pytest.raises(SystemExit) as stopped:
        composer_deploy.main(without)
    assert stopped.value.code == 2
    assert "the following arguments are required: --service-account" in capsys.readouterr().err


def test_scoring_cannot_run_as_the_runtime_account(capsys, no_commands):
    same = ["--scoring-service-account", GIVEN["service_account"]]
    with pytest.raises(SystemExit) as stopped:
        composer_deploy.main([*ARGS, *same])
    assert stopped.value.code == 2
    assert (
        "error: --scoring-service-account must be another account than --service-account: "
        "scoring must not be able to write models or the registry (docs/gcp.md)"
    ) in capsys.readouterr().err


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
import importlib, json, pkgutil, sys
from airflow import plugins_manager
from airflow.dag_processing.dagbag import DagBag

plugins_manager.get_import_errors()  # loads the plugins folder, as every component does
dags = sys.argv[1]
sys.path.append(dags)  # the DAG bundle's root, as the DAG processor and the workers add it
bag = DagBag(dags)
shipped = {}
for name in sys.argv[2].split(","):
    package = importlib.import_module(name)
    shipped[name] = package.__file__
    for module in pkgutil.walk_packages(package.__path__, name + "."):
        shipped[module.name] = importlib.import_module(module.name).__file__
print(json.dumps({
    "dag_errors": bag.import_errors,
    "dags": sorted(bag.dag_ids),
    "files": shipped,
    "heavy": sorted(m for m in sys.modules if m.split(".")[0] in ("kfp", "pyspark")),
}))
"""


@pytest.mark.slow
def test_what_goes_to_the_environment_bucket_imports_there(tmp_path):
    """The DAGs and every module of the shipped packages import from the uploaded dags/ alone,
    in an interpreter holding the lock's packages but not this project, with neither pyspark
    nor kfp imported."""
    from tests.composer import deployed

    variables = deployed.lay_out(tmp_path / "gcs")
    bucket = deployed.environment_bucket(tmp_path / "gcs")
    dags = bucket / "dags"
    packages = [folder.name for folder in composer_deploy.DAG_PACKAGES]
    assert sorted(p.name for p in dags.iterdir() if p.is_dir()) == sorted(packages)
    ignored = (dags / ".airflowignore").read_text().splitlines()
    assert [line.rstrip("/") for line in ignored if not line.startswith("#")] == packages
    env = deployed.clean_env(
        **variables,
        AIRFLOW_HOME=str(tmp_path / "home"),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(bucket / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
    )
    done = subprocess.run(
        [str(deployed.lock_python(tmp_path)), "-P", "-c", PROBE, str(dags), ",".join(packages)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["dag_errors"] == {}
    assert found["dags"] == [
        "customer_churn_batch_scoring",
        "customer_churn_rollback",
        "customer_churn_training",
    ]
    assert found["files"] and all(f.startswith(str(dags)) for f in found["files"].values())
    for folder in composer_deploy.DAG_PACKAGES:  # every module of each package went
        modules = {p.relative_to(folder.parent).with_suffix("") for p in folder.rglob("*.py")}
        named = {".".join(m.parts).removesuffix(".__init__") for m in modules}
        assert named <= set(found["files"])
    assert found["heavy"] == []  # kfp and pyspark need not be installed on Composer
