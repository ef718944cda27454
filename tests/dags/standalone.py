"""A real Airflow (``airflow standalone``: scheduler, API server, triggerer, DAG processor)
for tests that need one, on its own port, stopped children first."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil


def airflow_env(port: int, **overrides: str) -> dict[str, str]:
    """This process's environment, pointed at an Airflow on ``port`` that runs our DAGs."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        **overrides,
    }


def airflow(*args: str, env: dict) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, f"airflow {' '.join(args)} failed:\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def stop(process: subprocess.Popen) -> None:
    """Stop airflow standalone: every descendant first (it orphans them on SIGTERM), waiting
    until they are gone so the next server can take their ports, then itself."""
    descendants = psutil.Process(process.pid).children(recursive=True)
    for child in descendants:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.terminate()
    _, alive = psutil.wait_procs(descendants, timeout=15)
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()


def wait_for_api(port: int, process: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"airflow standalone exited:\n{log.read_text()[-3000:]}"
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"http://localhost:{port}/api/v2/version", timeout=5)
            return
        time.sleep(2)
    raise AssertionError(f"the API server did not start in {timeout} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def standalone(env: dict[str, str], log: Path, *, wait: bool = False):
    """Runs ``airflow standalone`` for the block; with ``wait``, only once its API answers."""
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow", "standalone"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            if wait:
                wait_for_api(int(env["AIRFLOW__API__PORT"]), process, log)
            yield process
        finally:
            stop(process)
