"""Deploy the churn DAGs and all they need to a Cloud Composer 3 environment (Airflow 3).

``python -m churn_airflow.composer_deploy --environment ENV --location REGION --project P
--data-bucket B --model-bucket B --code-bucket B [--region R] [--service-account SA] ...
[--dry-run]`` runs gcloud with the caller's credentials: it sets ``CHURN_BACKEND=gcp``, the
``churn_*`` Variables, the registry pool and ``google_cloud_default``, uploads the Spark jobs
and the pipeline template to the code bucket, then the DAG-side code and the DAGs to the
environment's bucket. ``--dry-run`` prints every step and runs none. See docs/gcp.md.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from churn_airflow import settings
from churn_airflow.airflow_setup import pool_commands
from pipeline.params import Environment

REPO = settings.REPO
REQUIRED = ("project", "data_bucket", "model_bucket", "code_bucket")
ENTRYPOINTS = tuple(f"spark_jobs/{job}.py" for job in ("preprocess", "train", "tune", "score"))
PACKAGE_ZIP, ZIP = "spark_jobs/package_zip.py", "dist/churn_ml.zip"
# churn_airflow is mirrored (a removed module goes too), without bytecode
RSYNC = (
    "gcloud",
    "storage",
    "rsync",
    "--recursive",
    "--delete-unmatched-destination-objects",
    "--exclude=.*__pycache__.*",
)
# The DAGs import these at run time besides churn_airflow; they go next to it in plugins/.
# Only these files: the others need kfp or pyspark, which the DAG side never imports.
DAG_SIDE_MODULES = {
    "pipeline": ("pipeline/__init__.py", "pipeline/params.py"),
    "churn_ml": tuple(
        f"spark_jobs/churn_ml/{name}.py" for name in ("__init__", "grids", "layout", "lineage")
    ),
}
CONNECTION = "google_cloud_default"
BUCKET_PLACEHOLDER = "gs://COMPOSER_BUCKET"  # the environment's bucket, in a dry run

ENVIRONMENT_NAME = re.compile(r"[a-z](?:[a-z0-9-]{0,62}[a-z0-9])?")
REGION = re.compile(r"[a-z]+(?:-[a-z]+)+[0-9]+")
PROJECT = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")
BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]")
SERVICE_ACCOUNT = re.compile(r"[^@\s]+@[a-z0-9.-]+\.gserviceaccount\.com")
RUNTIME_VERSION = re.compile(r"[0-9]+\.[0-9]+")


class DeployError(Exception):
    pass


@dataclass(frozen=True)
class Action:
    description: str
    argv: tuple[str, ...]
    may_fail: bool = False  # a failure here is expected and harmless


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


CHECKS = {
    "project": _matching(PROJECT, "a project id (6-30 of [a-z0-9-], starting with a letter)"),
    "region": _matching(REGION, "a region such as us-central1"),
    "data_bucket": _bucket,
    "model_bucket": _bucket,
    "code_bucket": _bucket,
    "service_account": _matching(SERVICE_ACCOUNT, "a service account email"),
    "runtime_version": _matching(RUNTIME_VERSION, "a Dataproc runtime version such as 2.3"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m churn_airflow.composer_deploy",
        description="Deploy the churn DAGs to a Cloud Composer environment (docs/gcp.md).",
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
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            required=name in REQUIRED,
            type=CHECKS.get(name, str),
            help=f"Airflow Variable churn_{name}"
            + (" (default: --location)" if name == "region" else ""),
        )
    parser.add_argument("--dry-run", action="store_true", help="print every step, run none")
    args = parser.parse_args(argv)
    args.region = args.region or args.location
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


def describe_argv(args) -> tuple[str, ...]:
    return ("gcloud", "composer", "environments", "describe", *_where(args), "--format=json")


def plan(args, bucket: str, backend_set: bool, template: Path) -> list[Action]:
    """Every step, in order: settings first, then code, the DAGs last (they need the rest)."""

    def airflow(description: str, command: list[str], may_fail: bool = False) -> Action:
        group, verb, *rest = command
        run = ("gcloud", "composer", "environments", "run", *_where(args), group, verb)
        return Action(description, (*run, "--", *rest), may_fail)

    def upload(description: str, sources, destination: str) -> Action:
        return Action(description, ("gcloud", "storage", "cp", *sources, destination))

    env = Environment.gcp(
        args.project, args.region, args.data_bucket, args.model_bucket, args.code_bucket
    )
    (zip_uri,) = env.python_file_uris
    plugins = f"{bucket}/plugins"
    dags = sorted(str(p.relative_to(REPO)) for p in (REPO / "dags").glob("*.py"))
    add = ["connections", "add", CONNECTION, "--conn-type", "google_cloud_platform"]
    actions = []
    if not backend_set:
        update = ("gcloud", "composer", "environments", "update", *_where(args))
        actions.append(
            Action(
                "set CHURN_BACKEND=gcp (only when unset; restarts Airflow, takes minutes)",
                (*update, "--update-env-variables=CHURN_BACKEND=gcp"),
            )
        )
    actions += [
        airflow(f"set Variable churn_{name}", ["variables", "set", f"churn_{name}", value])
        for name in settings.GCP_SETTINGS
        if (value := getattr(args, name))
    ]
    actions += [airflow(f"create pool {command[2]}", command) for command in pool_commands()]
    actions += [
        airflow(f"delete {CONNECTION}, if any", ["connections", "delete", CONNECTION], True),
        airflow(
            f"add {CONNECTION} for project {args.project}",
            [*add, "--conn-extra", json.dumps({"project": args.project})],
        ),
        Action("build the Spark job package", (sys.executable, PACKAGE_ZIP, "--output", ZIP)),
        upload("upload the Spark job package", [ZIP], zip_uri),
        upload("upload the Spark entrypoints", ENTRYPOINTS, f"{env.code_uri}/"),
        upload(
            "upload the compiled pipeline template",
            [str(template.relative_to(REPO))],
            f"gs://{args.code_bucket}/{settings.TEMPLATE_OBJECT}",
        ),
        upload(
            "upload plugins/.airflowignore (plugin loading skips the packages below)",
            ["plugins/.airflowignore"],
            f"{plugins}/",
        ),
        Action(
            "sync churn_airflow into the plugins folder",
            (*RSYNC, "plugins/churn_airflow", f"{plugins}/churn_airflow"),
        ),
        *(
            upload(f"upload {package} into the plugins folder", files, f"{plugins}/{package}/")
            for package, files in DAG_SIDE_MODULES.items()
        ),
        upload("upload the DAGs", dags, f"{bucket}/dags/"),
    ]
    return actions


def _reason(error: Exception) -> str:
    if isinstance(error, subprocess.CalledProcessError):
        last = (error.stderr or "").strip().splitlines()[-1:]
        return f"exit status {error.returncode}" + "".join(f": {line}" for line in last)
    return str(error)


def describe(args) -> tuple[str, bool]:
    """The environment's bucket (``gs://...``) and whether CHURN_BACKEND=gcp is set there."""
    argv = describe_argv(args)
    try:
        done = subprocess.run(argv, check=True, capture_output=True, text=True)
        config = json.loads(done.stdout)["config"]
        dags = config["dagGcsPrefix"]  # gs://<bucket>/dags
    except (OSError, ValueError, KeyError, subprocess.CalledProcessError) as error:
        raise DeployError(
            f"could not read the environment: {shlex.join(argv)}: {_reason(error)}"
        ) from error
    variables = config.get("softwareConfig", {}).get("envVariables", {})
    return dags.removesuffix("/dags"), variables.get("CHURN_BACKEND") == "gcp"


def run(actions: list[Action]) -> None:
    """Runs each step in the repo; stops at the first failure, naming the step and command."""
    for number, action in enumerate(actions, 1):
        step = f"step {number}/{len(actions)}"
        print(f"{step}: {action.description}", flush=True)
        try:
            subprocess.run(action.argv, cwd=REPO, check=not action.may_fail)
        except (OSError, subprocess.CalledProcessError) as error:
            raise DeployError(
                f"{step} ({action.description}) failed: {shlex.join(action.argv)}: {_reason(error)}"
            ) from error


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        template = fresh_template()
        print(f"{template.relative_to(REPO)} matches a fresh compile")
        if args.dry_run:
            print(f"dry run, nothing is run; {BUCKET_PLACEHOLDER} is the environment's bucket,")
            print(f"read at deploy time with: {shlex.join(describe_argv(args))}")
            for number, action in enumerate(plan(args, BUCKET_PLACEHOLDER, False, template), 1):
                print(f"{number:2}. {action.description}\n    {shlex.join(action.argv)}")
            return
        bucket, backend_set = describe(args)
        if backend_set:
            print(f"CHURN_BACKEND=gcp is already set on {args.environment}")
        run(plan(args, bucket, backend_set, template))
    except DeployError as error:
        sys.exit(f"deploy failed: {error}")
    print(f"deployed to {args.environment}")


if __name__ == "__main__":
    main()
