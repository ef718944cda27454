"""The process topology of ``docker-compose.yaml`` without Docker: PostgreSQL, then every
Airflow service's command as a process of its own, each with its own ``AIRFLOW_HOME`` and the
compose environment, its hosts, paths and ports mapped to this machine's.

No Docker engine runs here and no image can be pulled, so this is how the compose file's
settings are proven: the LocalExecutor, a real metadata database, and services that must share
their secrets to work together at all.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
import yaml

from tests.dags.conftest import REPO

SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
POSTGRES_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)


def airflow(*args: str, env: dict, python: str = sys.executable) -> str:
    """An ``airflow`` CLI command as a user types it; its output, or a failure with it."""
    argv = [python, "-m", "airflow", *args]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=env["AIRFLOW_HOME"])
    assert done.returncode == 0, f"airflow {' '.join(args)} failed:\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def stop(*processes: subprocess.Popen) -> None:
    """Stop processes and every descendant at once, waiting until they are gone (their ports
    too)."""
    family = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            parent = psutil.Process(process.pid)
            family += [*parent.children(recursive=True), parent]
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.terminate()
    _, alive = psutil.wait_procs(family, timeout=15)
    for member in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    for process in processes:
        process.wait(timeout=30)


@contextlib.contextmanager
def postgres(user: str = "airflow", database: str = "airflow"):
    """A PostgreSQL server on a private data dir and port; yields its SQLAlchemy URL's host
    part. As root it runs as the ``postgres`` user, which initdb requires."""
    if POSTGRES_BIN is None:
        raise RuntimeError("PostgreSQL is missing: `make postgres` installs Debian's postgresql")
    data = Path(tempfile.mkdtemp(prefix="churn-pg-"))  # not under pytest's root-only tmp
    as_owner: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(data, "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    port = free_port()

    def run(*argv: str) -> None:
        subprocess.run([*as_owner, *argv], check=True, capture_output=True, text=True)

    run(str(POSTGRES_BIN / "initdb"), "-D", str(data / "db"), "-U", user, "--auth=trust")
    server = subprocess.Popen(
        [*as_owner, str(POSTGRES_BIN / "postgres"), "-D", str(data / "db"), "-p", str(port),
         "-k", str(data), "-c", "listen_addresses=localhost"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(
            [*as_owner, str(POSTGRES_BIN / "pg_isready"), "-h", "localhost", "-p", str(port)],
            capture_output=True,
        ).returncode:
            assert time.monotonic() < deadline and server.poll() is None, "PostgreSQL did not start"
            time.sleep(0.5)
        run(
            str(POSTGRES_BIN / "createdb"), "-h", "localhost", "-p", str(port), "-U", user, database
        )
        yield f"{user}:{user}@localhost:{port}/{database}"
    finally:
        stop(server)
        shutil.rmtree(data, ignore_errors=True)


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


def compose_environment(secrets: dict[str, str], mapping: dict[str, str]) -> dict[str, str]:
    """The compose file's common environment, with ``${...}`` taken from ``secrets`` (what
    ``make compose-env`` writes to .env) and each compose host or path replaced per
    ``mapping``."""
    spec = compose()
    env = {}
    for name, value in spec["x-airflow-common"]["environment"].items():
        value = str(value)
        if value.startswith("${"):
            variable = value[2:].split(":", 1)[0].split("}", 1)[0]
            value = secrets.get(
                variable, value.split(":-", 1)[1].rstrip("}") if ":-" in value else ""
            )
        for old, new in mapping.items():
            value = value.replace(old, new)
        env[name] = value
    return env


def compose_folders(service: str) -> tuple[Path, Path]:
    """The compose volumes: ./dags and ./plugins at the image's default folders, everywhere."""
    return REPO / "dags", REPO / "plugins"


@contextlib.contextmanager
def stack(
    base: Path,
    api_port: int,
    overrides: dict[str, str],
    log_dir: Path,
    python: str = sys.executable,
    folders=compose_folders,
    init: list[str] | None = None,
):
    """The compose stack's services on this machine, the API on ``api_port``; yields the
    environment to run the ``airflow`` CLI with and the api-server's home.

    ``python`` runs every service; ``folders(service)`` gives each its (dags, plugins) folders;
    ``init`` replaces the compose file's init command (run by ``python``)."""
    from cryptography.fernet import Fernet

    secrets = {
        "AIRFLOW__API_AUTH__JWT_SECRET": Fernet.generate_key().decode(),
        "AIRFLOW__API__SECRET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
    }
    services = compose()["services"]
    with postgres() as database:
        common = compose_environment(
            secrets,
            {
                "airflow:airflow@postgres/airflow": database,
                "http://airflow-apiserver:8080/": f"http://localhost:{api_port}/",
                "/opt/airflow/.churn": overrides["CHURN_ROOT"],
            },
        )
        ports = {  # each host port the containers would have to themselves
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
        }

        def service_env(name: str) -> dict[str, str]:
            home = base / name
            home.mkdir(parents=True, exist_ok=True)
            dags, plugins = folders(name)
            return {
                **os.environ,
                **common,
                **ports,
                "PATH": f"{Path(python).parent}{os.pathsep}{os.environ['PATH']}",
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                **overrides,
            }

        init_service = services["airflow-init"]
        shared = compose()["x-airflow-common"]["environment"]
        extra = {k: str(v) for k, v in init_service["environment"].items() if k not in shared}
        subprocess.run(
            [python, *init] if init else [init_service["entrypoint"], *init_service["command"]],
            env={**service_env("airflow-init"), **extra},
            cwd=base,
            check=True,
            capture_output=True,
        )
        processes = []
        try:
            for name in SERVICES:
                log = (log_dir / f"{name}.log").open("w")
                processes.append(
                    subprocess.Popen(
                        [python, "-m", "airflow", services[name]["command"]],
                        env=service_env(name),
                        cwd=base / name,  # not the repository: `-m` puts the cwd on sys.path
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
            wait_for_api(api_port, processes, log_dir)
            yield {
                "env": service_env("cli"),
                "api_home": base / SERVICES[0],
                "pids": {name: p.pid for name, p in zip(SERVICES, processes, strict=True)},
            }
        finally:
            stop(*processes)


def wait_for_api(port: int, processes: list, log_dir: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process, name in zip(processes, SERVICES, strict=True):
            log = (log_dir / f"{name}.log").read_text()[-3000:]
            assert process.poll() is None, f"{name} exited:\n{log}"
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"http://localhost:{port}/api/v2/version", timeout=5)
            return
        time.sleep(2)
    raise AssertionError(f"the API server did not answer in {timeout} s")
