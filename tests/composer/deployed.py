"""What the Composer deploy uploads, laid out from its own plan, and an interpreter with only
the lock's packages (what the environment's PyPI packages give Composer), not this project.

The plan is ``composer_deploy.plan`` for the deploy test's arguments; its ``gcloud storage``
steps run here with each bucket mapped to a folder (``gs://B/x`` -> ``<root>/B/x``), its build
step runs as it is, and the settings step becomes the environment variables it would set.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from churn_tools import composer_deploy
from churn_tools.composer_deploy import ComposerEnvironment
from pipeline.compile import TEMPLATE
from tests.tools.test_composer_deploy import ARGS, ENV_BUCKET, description

REPO = composer_deploy.REPO
LOCK = REPO / "requirements.lock"


def plan(airflow_uri: str = "http://airflow.invalid") -> tuple[list, dict[str, str]]:
    """The deploy's steps for the test's arguments, and the env variables it sets."""
    args = composer_deploy.parse_args(ARGS)
    environment = ComposerEnvironment.from_description(description(airflow_uri))
    return composer_deploy.plan(args, environment, TEMPLATE), composer_deploy.env_variables(args)


def _folder(uri: str, root: Path) -> Path:
    return root / uri.removeprefix("gs://")


def _mirror(source: Path, target: Path, exclude: re.Pattern) -> None:
    """``gcloud storage rsync --recursive --delete-unmatched-destination-objects``."""
    shutil.rmtree(target, ignore_errors=True)
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source).as_posix()
        if path.is_file() and not exclude.fullmatch(relative):
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / relative)


def lay_out(root: Path) -> dict[str, str]:
    """Runs the plan's uploads into ``root``; returns the env variables the deploy sets."""
    actions, variables = plan()
    for action in actions:
        argv = list(action.argv)
        if argv[:3] == ["gcloud", "storage", "cp"]:
            *sources, target = argv[3:]
            for source in sources:
                to = _folder(target, root)
                to = to / Path(source).name if target.endswith("/") else to
                to.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / source, to)
        elif argv[:3] == ["gcloud", "storage", "rsync"]:
            (exclude,) = [a.removeprefix("--exclude=") for a in argv if a.startswith("--exclude=")]
            _mirror(REPO / argv[-2], _folder(argv[-1], root), re.compile(exclude))
        elif argv and argv[0] == sys.executable:  # the build step, as the deploy runs it
            subprocess.run(argv, cwd=REPO, check=True, capture_output=True)
        elif argv[:4] != ["gcloud", "composer", "environments", "update"] and not action.request:
            raise AssertionError(f"a step this layout does not know: {action}")
    return variables


def environment_bucket(root: Path) -> Path:
    """The environment's bucket, as Composer mounts it on every component."""
    return _folder(ENV_BUCKET, root)


def lock_python(base: Path) -> Path:
    """A venv with exactly the lock's packages and not this project (uv links from its cache)."""
    uv = Path(sys.executable).with_name("uv")
    venv = base / "composer-venv"
    if not (venv / ".synced").exists():
        python = venv / "bin" / "python"
        for step in (
            ["venv", "--quiet", "--python", sys.executable, str(venv)],
            ["pip", "sync", "--quiet", "--python", str(python), str(LOCK)],
        ):
            subprocess.run([str(uv), *step], check=True)
        (venv / ".synced").touch()
    return venv / "bin" / "python"


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without anything that points at the repository."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CHURN_"))}
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    return {**env, **extra}
