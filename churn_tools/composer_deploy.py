"""Deploy the churn DAGs and all they need to a Cloud Composer 3 environment (Airflow 3).

``python -m churn_tools.composer_deploy --environment ENV --location REGION --project P
--data-bucket B --model-bucket B --code-bucket B --service-account SA [--region R] ...
[--dry-run]`` works with the caller's gcloud credentials. A preflight first reads the
environment, the project's APIs and the buckets, and stops before any change if something is
missing. Then it sets every setting as a ``CHURN_*`` environment variable in one environment
update, creates the registry pool through the environment's Airflow REST API, uploads the
Spark jobs and the pipeline template to the code bucket, and the packages the DAGs import and
the DAGs to the environment's ``dags/`` folder. The preflight also refuses an Airflow or Google
provider version outside the tested range (``TESTED``). ``--dry-run`` runs the preflight and
prints every step, running none. The connection ``google_cloud_default`` is Composer's own.
See docs/gcp.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import shlex
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import SpecifierSet

import churn_airflow
import churn_core
from churn_airflow import settings
from churn_core import runtime, stages
from churn_core.pipeline_params import Environment
from churn_tools import REPO
from churn_tools.airflow_setup import POOLS

ENTRYPOINTS = tuple(f"spark_jobs/{stage.job}.py" for stage in stages.ALL)
PACKAGE_ZIP, ZIP = "spark_jobs/package_zip.py", "dist/churn_ml.zip"
# a package is mirrored (a removed module goes too), without bytecode
RSYNC = (
    "gcloud",
    "storage",
    "rsync",
    "--recursive",
    "--delete-unmatched-destination-objects",
    "--exclude=.*__pycache__.*",
)
# The code the DAGs import, each package whole, into the environment's dags/ folder: Composer
# syncs it to the DAG processor and the workers, and Airflow puts it on their sys.path (the DAG
# bundle's root). Composer 3 gives the scheduler and the triggerer neither dags/ nor plugins/,
# so nothing of ours may run there: the DAGs use built-in timetables and the provider's own
# triggers only (tests/composer shows it on a Composer-shaped Airflow).
DAG_PACKAGES = tuple(Path(package.__file__).parent for package in (churn_airflow, churn_core))
DAG_IGNORE = "dags/.airflowignore"  # the DAG processor parses no file of those packages
# What the DAGs and the jobs call, whatever the runtime (which may add its own).
APIS = (
    "aiplatform.googleapis.com",
    "bigquery.googleapis.com",
    "bigquerystorage.googleapis.com",  # the Spark connector reads through it
    "composer.googleapis.com",
    "compute.googleapis.com",  # Dataproc's networking
    "dataproc.googleapis.com",
    "storage.googleapis.com",
)
AIRFLOW_3_IMAGE = re.compile(r"composer-3-airflow-3(\.|$)")
POOLS_API, VERSION_API, PROVIDERS_API = "/api/v2/pools", "/api/v2/version", "/api/v2/providers"
# What the package is tested with (requirements.txt pins inside these; tests keep them so). It
# uses what Airflow 3.3 brought: the bulk pools API, airflow.sdk.exceptions.
TESTED = {
    "apache-airflow": SpecifierSet(">=3.3.2,<3.4"),
    "apache-airflow-providers-google": SpecifierSet(">=22.8.0,<23"),
}

ENVIRONMENT_NAME = re.compile(r"[a-z](?:[a-z0-9-]{0,62}[a-z0-9])?")
REGION = re.compile(r"[a-z]+(?:-[a-z]+)+[0-9]+")
PROJECT = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")
BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]")
SERVICE_ACCOUNT = re.compile(r"[^@\s]+@[a-z0-9.-]+\.gserviceaccount\.com")
LIST_ITEM = re.compile(r"[^,\s]+")  # one value of gcloud's KEY=VALUE,... list


class DeployError(Exception):
    pass


@dataclass(frozen=True)
class ApiRequest:
    """One call of the environment's Airflow REST API."""

    method: str
    url: str
    body: dict

    def __str__(self) -> str:
        return f"{self.method} {self.url} {json.dumps(self.body)}"


@dataclass(frozen=True)
class Action:
    description: str
    argv: tuple[str, ...] = ()
    request: ApiRequest | None = None

    def __str__(self) -> str:
        return str(self.request) if self.request else shlex.join(self.argv)


@dataclass(frozen=True)
class ComposerEnvironment:
    """What ``gcloud composer environments describe`` tells the deploy."""

    bucket: str  # gs://...
    airflow_uri: str
    image_version: str
    triggerers: int
    env_variables: dict[str, str]

    @classmethod
    def from_description(cls, description: dict) -> ComposerEnvironment:
        config = description["config"]
        software = config.get("softwareConfig", {})
        return cls(
            bucket=config["dagGcsPrefix"].removesuffix("/dags"),
            airflow_uri=config["airflowUri"].rstrip("/"),
            image_version=software.get("imageVersion", ""),
            triggerers=int(config.get("workloadsConfig", {}).get("triggerer", {}).get("count", 0)),
            env_variables=software.get("envVariables", {}),
        )


def _matching(pattern: re.Pattern, what: str):
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise argparse.ArgumentTypeError(f"{value!r} is not {what}")
        return value

    return check


def _bucket(value: str) -> str:
    if value.startswith("gs://"):
        raise argparse.ArgumentTypeError(f"{value!r} is not a bucket name: drop the gs://")
    return _matching(BUCKET, "a bucket name (3-63 of [a-z0-9._-])")(value)


def _runtime_version(value: str) -> str:
    try:
        return runtime.runtime(value).version
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


CHECKS = {
    "project": _matching(PROJECT, "a project id (6-30 of [a-z0-9-], starting with a letter)"),
    "region": _matching(REGION, "a region such as us-central1"),
    "data_bucket": _bucket,
    "model_bucket": _bucket,
    "code_bucket": _bucket,
    "service_account": _matching(SERVICE_ACCOUNT, "a service account email"),
    "scoring_service_account": _matching(SERVICE_ACCOUNT, "a service account email"),
    "runtime_version": _runtime_version,
}
ANY_VALUE = _matching(LIST_ITEM, "a value without commas or spaces")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m churn_tools.composer_deploy",
        description="Deploy the churn DAGs to a Cloud Composer 3 environment (docs/gcp.md).",
    )
    parser.add_argument(
        "--environment",
        required=True,
        type=_matching(ENVIRONMENT_NAME, "a Composer environment name ([a-z][a-z0-9-]*)"),
        help="the Composer 3 environment to deploy to",
    )
    parser.add_argument(
        "--location", required=True, type=CHECKS["region"], help="the environment's region"
    )
    for name in settings.GCP_SETTINGS:
        default = settings.DEFAULTS.get(name)
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            required=name in settings.REQUIRED,
            type=CHECKS.get(name, ANY_VALUE),
            help=f"set as CHURN_{name.upper()}"
            + (" (default: --location)" if name == "region" else "")
            + (f" (default: {default})" if default and name != "region" else ""),
        )
    parser.add_argument("--dry-run", action="store_true", help="preflight, print every step")
    args = parser.parse_args(argv)
    args.region = args.region or args.location
    if args.scoring_service_account == args.service_account:
        parser.error(
            "--scoring-service-account must be another account than --service-account: "
            "scoring must not be able to write models or the registry (docs/gcp.md)"
        )
    try:
        runtime.check_batch_settings(
            args.runtime_version or runtime.DEFAULT, args.spark_history_server or ""
        )
    except ValueError as error:
        parser.error(str(error))
    return args


def fresh_template() -> Path:
    """The committed template, if it matches a fresh compile (as tests/pipeline/test_compile)."""
    import yaml

    from pipeline.compile import TEMPLATE, fresh_spec  # kfp: only when deploying

    if fresh_spec() != yaml.safe_load(TEMPLATE.read_text()):
        raise DeployError(f"{TEMPLATE.relative_to(REPO)} is stale: run `make compile` first")
    return TEMPLATE


def _where(args) -> tuple[str, ...]:
    return (args.environment, "--location", args.location, "--project", args.project)


def _gcloud_json(argv: tuple[str, ...]):
    """The JSON a read-only gcloud command prints; DeployError naming it if it fails."""
    try:
        done = subprocess.run(argv, check=True, capture_output=True, text=True)
        return json.loads(done.stdout)
    except (OSError, ValueError, subprocess.CalledProcessError) as error:
        raise DeployError(f"{shlex.join(argv)}: {_reason(error)}") from error


def describe_argv(args) -> tuple[str, ...]:
    return ("gcloud", "composer", "environments", "describe", *_where(args), "--format=json")


def describe(args) -> ComposerEnvironment:
    argv = describe_argv(args)
    try:
        return ComposerEnvironment.from_description(_gcloud_json(argv))
    except KeyError as error:
        problem = f"{shlex.join(argv)}: no {error} in its answer"
    except DeployError as error:
        problem = str(error)
    raise DeployError(f"could not read the environment: {problem}")


def required_apis(args) -> list[str]:
    chosen = runtime.runtime(args.runtime_version or runtime.DEFAULT)
    image = ("artifactregistry.googleapis.com",) if args.container_image else ()
    return sorted({*APIS, *chosen.apis, *image})


def preflight(args, environment: ComposerEnvironment) -> None:
    """Stops the deploy before any change, naming everything that is missing."""
    problems = []
    if not AIRFLOW_3_IMAGE.match(environment.image_version):
        problems.append(
            f"{args.environment} runs {environment.image_version or 'an unknown image'}, "
            "not Cloud Composer 3 with Airflow 3 (composer-3-airflow-3.*)"
        )
    if problem := version_problem(args, environment):
        problems.append(problem)
    if environment.triggerers < 1:
        problems.append(
            f"{args.environment} has no triggerer, which the deferrable tasks need: "
            f"gcloud composer environments update {shlex.join(_where(args))} --triggerer-count 1"
        )
    listed = ("gcloud", "services", "list", "--enabled", "--project", args.project, "--format=json")
    enabled = {service["config"]["name"] for service in _gcloud_json(listed)}
    if missing := [api for api in required_apis(args) if api not in enabled]:
        problems.append(
            f"APIs not enabled in {args.project}: {', '.join(missing)} "
            f"(gcloud services enable {' '.join(missing)} --project {args.project})"
        )
    for name in ("data_bucket", "model_bucket", "code_bucket"):
        bucket = f"gs://{getattr(args, name)}"
        try:
            _gcloud_json(("gcloud", "storage", "buckets", "describe", bucket, "--format=json"))
        except DeployError as error:
            problems.append(f"the {name.replace('_', ' ')} {bucket} cannot be read: {error}")
    if problems:
        raise DeployError("preflight failed, nothing was changed: " + "; ".join(problems))


def installed_versions(environment: ComposerEnvironment) -> dict[str, str]:
    """Airflow's and each provider's version, as the environment's Airflow REST API reports."""
    versions = {"apache-airflow": _call(environment.airflow_uri + VERSION_API)["version"]}
    offset = 0
    while True:
        page = _call(f"{environment.airflow_uri}{PROVIDERS_API}?limit=100&offset={offset}")
        versions |= {p["package_name"]: p["version"] for p in page["providers"]}
        offset += len(page["providers"])
        if not page["providers"] or offset >= page["total_entries"]:
            return versions


def version_problem(args, environment: ComposerEnvironment) -> str | None:
    """One sentence naming each version outside TESTED, or None."""
    try:
        found = installed_versions(environment)
    except (OSError, KeyError, ValueError, subprocess.CalledProcessError) as error:
        return f"the Airflow API of {args.environment} did not tell its versions: {_reason(error)}"
    outside = [
        f"{name} {found.get(name, '(not installed)')}"
        for name, tested in TESTED.items()
        if name not in found or found[name] not in tested
    ]
    if not outside:
        return None
    tested = ", ".join(f"{name} {versions}" for name, versions in TESTED.items())
    return f"{args.environment} runs {' and '.join(outside)}; this package is tested with {tested}"


def env_variables(args) -> dict[str, str]:
    """Every setting given, as the environment variables the DAGs read (settings.py)."""
    given = {f"CHURN_{n.upper()}": v for n in settings.GCP_SETTINGS if (v := getattr(args, n))}
    return {"CHURN_BACKEND": "gcp", **given}


def pool_request(environment: ComposerEnvironment) -> ApiRequest:
    """Create or overwrite the DAGs' pools in one bulk call of the Airflow 3 REST API."""
    pools = [
        {"name": name, "slots": slots, "description": about, "include_deferred": False}
        for name, (slots, about) in POOLS.items()
    ]
    body = {
        "actions": [{"action": "create", "entities": pools, "action_on_existence": "overwrite"}]
    }
    return ApiRequest("PATCH", environment.airflow_uri + POOLS_API, body)


def plan(args, environment: ComposerEnvironment, template: Path) -> list[Action]:
    """Every step, in order: settings first, then code, the DAGs last (they need the rest)."""

    def upload(description: str, sources, destination: str) -> Action:
        return Action(description, ("gcloud", "storage", "cp", *sources, destination))

    env = Environment.gcp(
        args.project, args.region, args.data_bucket, args.model_bucket, args.code_bucket
    )
    (zip_uri,) = env.python_file_uris
    dags_folder = f"{environment.bucket}/dags"
    dags = sorted(str(p.relative_to(REPO)) for p in (REPO / "dags").glob("*.py"))
    wanted = env_variables(args)
    actions = []
    if any(environment.env_variables.get(k) != v for k, v in wanted.items()):
        variables = ",".join(f"{k}={v}" for k, v in wanted.items())
        update = ("gcloud", "composer", "environments", "update", *_where(args))
        actions.append(
            Action(
                "set the settings as environment variables (restarts Airflow, takes minutes)",
                (*update, f"--update-env-variables={variables}"),
            )
        )
    pools = ", ".join(POOLS)
    actions += [
        Action(f"create pool {pools} (Airflow REST API)", request=pool_request(environment)),
        Action("build the Spark job package", (sys.executable, PACKAGE_ZIP, "--output", ZIP)),
        upload("upload the Spark job package", [ZIP], zip_uri),
        upload("upload the Spark entrypoints", ENTRYPOINTS, f"{env.code_uri}/"),
        upload(
            "upload the compiled pipeline template",
            [str(template.relative_to(REPO))],
            f"gs://{args.code_bucket}/{settings.TEMPLATE_OBJECT}",
        ),
        upload(
            f"upload {DAG_IGNORE} (DAG parsing skips the packages below)",
            [DAG_IGNORE],
            f"{dags_folder}/",
        ),
        *(
            Action(
                f"sync {folder.name} into the dags folder",
                (*RSYNC, str(folder.relative_to(REPO)), f"{dags_folder}/{folder.name}"),
            )
            for folder in DAG_PACKAGES
        ),
        upload("upload the DAGs", dags, f"{dags_folder}/"),
    ]
    return actions


def _reason(error: Exception) -> str:
    if isinstance(error, subprocess.CalledProcessError):
        last = (error.stderr or "").strip().splitlines()[-1:]
        return f"exit status {error.returncode}" + "".join(f": {line}" for line in last)
    if isinstance(error, urllib.error.HTTPError):
        reason = f"HTTP {error.code}: {error.read().decode(errors='replace')[:300]}"
        if error.code in (401, 403):
            reason += (
                " (your account needs an Airflow role that may edit pools in the environment:"
                " Op, Composer's default for a new user, or Admin)"
            )
        return reason
    return str(error)


@functools.cache
def access_token() -> str:
    """The caller's gcloud access token (read once): Composer's Airflow API accepts it as a
    Bearer token."""
    argv = ("gcloud", "auth", "print-access-token")
    done = subprocess.run(argv, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def _call(url: str, method: str = "GET", body: dict | None = None) -> dict:
    """One call of the environment's Airflow REST API, with the deployer's token; its answer."""
    http = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {access_token()}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(http, timeout=90) as response:
        return json.load(response)


def send(request: ApiRequest) -> None:
    """One change through the Airflow REST API; a refused call or a bulk entity error raises."""
    answer = _call(request.url, request.method, request.body)
    errors = [e for result in answer.values() if result for e in result.get("errors", [])]
    if errors:
        raise ValueError(f"the Airflow API refused part of it: {errors}")


def run(actions: list[Action]) -> None:
    """Runs each step in the repo; stops at the first failure, naming the step and command."""
    for number, action in enumerate(actions, 1):
        step = f"step {number}/{len(actions)}"
        print(f"{step}: {action.description}", flush=True)
        try:
            if action.request:
                send(action.request)
            else:
                subprocess.run(action.argv, cwd=REPO, check=True)
        except (OSError, ValueError, subprocess.CalledProcessError) as error:
            raise DeployError(
                f"{step} ({action.description}) failed: {action}: {_reason(error)}"
            ) from error


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        template = fresh_template()
        print(f"{template.relative_to(REPO)} matches a fresh compile")
        environment = describe(args)
        preflight(args, environment)
        print(f"preflight passed: {args.environment} runs {environment.image_version}")
        actions = plan(args, environment, template)
        if args.dry_run:
            print("dry run, nothing is changed; the steps would be:")
            for number, action in enumerate(actions, 1):
                print(f"{number:2}. {action.description}\n    {action}")
            return
        run(actions)
    except DeployError as error:
        sys.exit(f"deploy failed: {error}")
    print(f"deployed to {args.environment}")


if __name__ == "__main__":
    main()
