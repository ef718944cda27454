"""SparkSession for the jobs, and a clear message when Java is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from churn_ml import session

REPO = Path(__file__).resolve().parents[2]


def test_build_session_reuses_the_active_session(spark):
    assert session.build_session("any-job") is spark


def test_require_java_finds_java_home(tmp_path, monkeypatch):
    java = tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text("")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    session.require_java()


def test_require_java_names_java_17(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(session.JavaMissingError, match="Spark needs Java 17"):
        session.require_java()
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    with pytest.raises(session.JavaMissingError, match="JAVA_HOME"):
        session.require_java()


def _path_without_java() -> str:
    dirs = os.environ.get("PATH", "").split(os.pathsep)
    kept = [d for d in dirs if d and not (Path(d) / "java").exists()]
    return os.pathsep.join(kept)


@pytest.mark.parametrize(
    ("job", "args"),
    [
        ("preprocess.py", ["--input-uri", "in.csv", "--dataset-uri", "w"]),
        ("train.py", ["--dataset-uri", "w", "--model-uri", "m", "--metrics-uri", "x"]),
        ("tune.py", ["--dataset-uri", "w", "--model-uri", "m", "--metrics-uri", "x"]),
        (
            "score.py",
            [
                "--input-uri",
                "s.csv",
                "--model-uri",
                "m",
                "--model-version",
                "v",
                "--dataset-uri",
                "w",
            ],
        ),
    ],
)
def test_job_without_java_exits_1_with_one_clear_sentence(job, args, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK_", "JAVA_HOME"))}
    env["PATH"] = _path_without_java()
    result = subprocess.run(
        [sys.executable, str(REPO / "spark_jobs" / job), "--pipeline-id", "p1", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Spark needs Java 17" in lines[0]
    assert "JAVA_HOME" in lines[0]
    assert "Traceback" not in result.stderr and "py4j" not in result.stderr.lower()
    assert not list(tmp_path.iterdir())


DRIVER_MEMORY_JOB = """
from churn_ml.session import build_session
spark = build_session("memory-probe")
print("driver memory", spark.sparkContext.getConf().get("spark.driver.memory"))
print("huge method limit", spark.conf.get("spark.sql.codegen.hugeMethodLimit"))
"""


@pytest.mark.slow
def test_driver_memory_override_reaches_plain_python_and_spark_submit(tmp_path, capfd, monkeypatch):
    from churn_core import batches
    from churn_core.pipeline_params import Environment
    from pipeline.components import spark_submit

    job = tmp_path / "probe.py"
    job.write_text(DRIVER_MEMORY_JOB, encoding="utf-8")
    for name in [k for k in os.environ if k.startswith("PYSPARK_GATEWAY")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CHURN_SPARK_MASTER", "local[1]")
    monkeypatch.setenv("CHURN_SPARK_DRIVER_MEMORY", "1200m")
    plain = subprocess.run([sys.executable, str(job)], capture_output=True, text=True, timeout=120)
    assert "driver memory 1200m" in plain.stdout, plain.stderr[-2000:]
    assert "huge method limit 8000" in plain.stdout

    monkeypatch.setenv("CHURN_SPARK_DRIVER_MEMORY", "1100m")
    settings = {
        **vars(Environment.local(tmp_path)),
        "code_uri": str(tmp_path),
        "python_file_uris": [],
    }
    spark_submit(batches.pyspark_batch(settings, "probe", [], "probe"), "memory-probe")
    out = capfd.readouterr().out
    assert "driver memory 1100m" in out
    assert "huge method limit 8000" in out
