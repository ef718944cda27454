"""The Docker stack cannot run here (no Docker engine): check what can be checked."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
AIRFLOW_SERVICES = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-init",
}


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


def test_compose_has_the_official_shape():
    spec = compose()
    assert set(spec["services"]) == AIRFLOW_SERVICES | {"postgres"}
    common = spec["x-airflow-common"]
    for name in AIRFLOW_SERVICES:
        service = spec["services"][name]
        assert service["image"] == common["image"], name  # every one built from the anchor
        assert service["volumes"] == common["volumes"], name
    env = common["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
    assert env["CHURN_BACKEND"] == "${CHURN_BACKEND:-local}"
    assert "postgres" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert common["env_file"] == [{"path": "gcp.env", "required": False}]
    commands = {n: spec["services"][n]["command"] for n in AIRFLOW_SERVICES}
    assert commands["airflow-init"] == ["-c", "python -m churn_tools.airflow_setup"]
    assert {commands[f"airflow-{c}"] for c in ("scheduler", "dag-processor", "triggerer")} == {
        "scheduler",
        "dag-processor",
        "triggerer",
    }
    assert commands["airflow-apiserver"] == "api-server"


def test_mounted_paths_and_build_context_exist():
    common = compose()["x-airflow-common"]
    for volume in common["volumes"]:
        host = volume.split(":")[0]
        if host != "./.churn":  # created by the first run
            assert (REPO / host).is_dir(), host
    assert (REPO / common["build"] / "Dockerfile").is_file()


def test_image_installs_the_makefile_lock():
    dockerfile = (REPO / "Dockerfile").read_text()
    makefile = (REPO / "Makefile").read_text()
    assert dockerfile.startswith("#") and "FROM apache/airflow:3.3.2-python3.11" in dockerfile
    assert "COPY requirements.lock /requirements.lock" in dockerfile
    assert "-r /requirements.lock" in dockerfile
    assert "requirements.lock" in makefile and "uv pip sync" in makefile
    assert "openjdk-17" in dockerfile


def test_every_airflow_setup_creates_the_pool():
    makefile = (REPO / "Makefile").read_text()
    airflow_up = makefile.split("\nairflow-up:")[1].split("\n\n")[0]
    assert airflow_up.index("-m churn_tools.airflow_setup") < airflow_up.index("standalone")
    spec = compose()
    # as the image's airflow user, whose Python has airflow and this project's packages
    assert spec["services"]["airflow-init"]["user"] == spec["x-airflow-common"]["user"]


def test_make_compose_env_writes_every_variable_the_compose_file_requires(tmp_path):
    """Each `${X:?...}` of the compose file is a line of the .env `make compose-env` writes."""
    import re
    import subprocess
    import sys

    text = (REPO / "docker-compose.yaml").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert required >= {
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__API__SECRET_KEY",
        "AIRFLOW__CORE__FERNET_KEY",
    }
    makefile = (REPO / "Makefile").read_text()
    program = makefile.split("COMPOSE_SECRETS := ", 1)[1].split("\ncompose-env:", 1)[0]
    program = program.replace("\\\n\t", "").replace("$$", "$")
    written = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    ).stdout
    keys = {line.split("=", 1)[0] for line in written.splitlines()}
    assert keys == required | {"AIRFLOW_UID"}
    values = dict(line.split("=", 1) for line in written.splitlines())
    assert all(len(values[k]) >= 32 for k in required)


def test_make_compose_env_writes_a_file_only_its_owner_reads(tmp_path):
    import subprocess

    for name in ("requirements.lock", "pyproject.toml"):  # what the venv target depends on
        (tmp_path / name).symlink_to(REPO / name)
    venv = f"VENV={REPO / '.venv'}"
    subprocess.run(["make", "-s", "-f", str(REPO / "Makefile"), "-C", str(tmp_path), venv,
                    "compose-env"], check=True, capture_output=True)  # fmt: skip
    assert (tmp_path / ".env").stat().st_mode & 0o777 == 0o600


def test_make_airflow_up_listens_on_this_machine_and_writes_private_files():
    import subprocess

    def plan(*overrides: str) -> str:
        return subprocess.run(
            ["make", "-n", "-s", "-C", str(REPO), "airflow-up", *overrides],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip

    (standalone,) = [line for line in plan().splitlines() if "airflow standalone" in line]
    assert standalone.startswith("umask 077;")  # the generated password file is 0600
    assert "AIRFLOW__API__HOST=127.0.0.1 " in standalone
    assert "AIRFLOW__API__HOST=0.0.0.0 " in plan("AIRFLOW_BIND=0.0.0.0")
    ports = compose()["services"]["airflow-apiserver"]["ports"]
    assert ports == ["${AIRFLOW_BIND:-127.0.0.1}:8080:8080"]


def test_every_local_airflow_writes_its_lineage_beside_the_jobs(tmp_path):
    """The compose file, ``make airflow-up`` and the demo give the OpenLineage provider the
    file transport the Spark jobs' events go to (churn_core.lineage_conf), and the setup every
    deployment runs creates its folder."""
    import json
    import shlex
    import subprocess

    from churn_core import lineage_conf
    from churn_tools.airflow_setup import lineage_folder
    from churn_tools.demo import airflow_env

    root = "/opt/airflow/.churn"
    composed = compose()["x-airflow-common"]["environment"]["AIRFLOW__OPENLINEAGE__TRANSPORT"]
    assert json.loads(composed) == json.loads(lineage_conf.airflow_transport(root))
    plan = subprocess.run(
        ["make", "-n", "-s", "-C", str(REPO), "airflow-up", f"CHURN_ROOT={tmp_path}"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    (standalone,) = [line for line in plan.splitlines() if "airflow standalone" in line]
    (setting,) = [w for w in shlex.split(standalone) if w.startswith("AIRFLOW__OPENLINEAGE__")]
    made = json.loads(setting.split("=", 1)[1])
    assert made == json.loads(lineage_conf.airflow_transport(str(tmp_path)))
    demo = airflow_env(tmp_path)["AIRFLOW__OPENLINEAGE__TRANSPORT"]
    assert demo == lineage_conf.airflow_transport(str(tmp_path))
    lineage_folder({"AIRFLOW__OPENLINEAGE__TRANSPORT": demo})
    assert (tmp_path / "lineage").is_dir()
