"""A shared archive of the classes a local Spark job's JVM loads (Java's class data sharing),
so each local spark-submit maps them instead of loading and verifying them again.

The first local job on a machine finds no archive and makes it: a small job that touches what
the churn jobs use (CSV, Parquet, a forest fit, a saved model) writes it as its JVM exits,
once (about 40 s on two cores). Every later job starts from it: the training job took 0.845x
the wall time and 0.855x the CPU (docs/performance.md). It lives in this Python environment,
named by the Spark and the Java it was made with; a JVM that cannot use it starts as it would
without it. Dataproc starts its own JVMs: only the local backend's spark-submit uses this.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

WARM_UP = """
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import RandomForestClassifier
from pyspark.ml.feature import StringIndexer, VectorAssembler
from pyspark.sql import SparkSession, functions as F
import sys

spark = SparkSession.builder.getOrCreate()
folder = sys.argv[1]
rows = spark.range(64).select(F.col("id").cast("double").alias("x"),
                              (F.col("id") % 2).cast("string").alias("label"))
rows.write.option("header", True).csv(folder + "/csv")
rows = spark.read.option("header", True).option("inferSchema", True).csv(folder + "/csv")
rows.write.partitionBy("label").parquet(folder + "/parquet")
rows = spark.read.parquet(folder + "/parquet").cache()
model = Pipeline(stages=[StringIndexer(inputCol="label", outputCol="y"),
                         VectorAssembler(inputCols=["x"], outputCol="features"),
                         RandomForestClassifier(labelCol="y", numTrees=2)]).fit(rows)
model.write().overwrite().save(folder + "/model")
PipelineModel.load(folder + "/model").transform(rows).groupBy("prediction").count().collect()
spark.stop()
"""


def local_spark_submit() -> tuple[str, dict[str, str]]:
    """This environment's spark-submit, and the variables it starts with: its Python driver
    and workers run this Python."""
    submit = os.path.join(os.path.dirname(sys.executable), "spark-submit")
    return submit, {**os.environ, "PYSPARK_PYTHON": sys.executable,
                    "PYSPARK_DRIVER_PYTHON": sys.executable}  # fmt: skip


def java_binary() -> str | None:
    """The java spark-submit starts: ``$JAVA_HOME/bin/java``, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    return java if java and os.path.exists(java) else None


def archive_path(java: str, folder: Path | None = None) -> Path:
    """The archive for this Spark and this java binary (a new JDK gets a new one)."""
    import pyspark

    real = os.path.realpath(java)
    made = f"{pyspark.__version__} {real} {os.stat(real).st_mtime_ns}"
    key = hashlib.sha256(made.encode()).hexdigest()[:16]
    return (folder or Path(sys.prefix, "var", "churn")) / f"spark-classes-{key}.jsa"


def make(spark_submit: str, env: dict, archive: Path, say: Callable[[str], None]) -> None:
    """Run the warm-up job, its JVM writing the archive at exit; publish it if both worked.
    One process at a time makes it: the others go on without."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with open(archive.with_suffix(".lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released if this process dies
        except BlockingIOError:
            return
        if archive.exists():  # another job made it since
            return
        say(f"making the JVM class archive {archive} (once for this environment)")
        with tempfile.TemporaryDirectory(prefix="churn-class-sharing-") as scratch:
            job, staged = Path(scratch, "warm_up.py"), Path(scratch, "classes.jsa")
            job.write_text(WARM_UP)
            done = subprocess.run(
                [spark_submit, "--master", "local[1]", "--conf", "spark.ui.enabled=false",
                 "--driver-java-options", f"-XX:ArchiveClassesAtExit={staged}",
                 str(job), f"{scratch}/data"],
                capture_output=True, text=True, env=env,
            )  # fmt: skip
            if done.returncode or not staged.exists():
                say(f"no JVM class archive (exit code {done.returncode}): {done.stderr[-500:]}")
                return
            os.replace(staged, archive)


def driver_options(spark_submit: str, env: dict, say: Callable[[str], None]) -> list[str]:
    """spark-submit's arguments for a local job's driver JVM (started with ``env``): the
    archive, made first if this environment has none; none without a Java (spark-submit names
    the problem itself)."""
    java = java_binary()
    if java is None:
        return []
    archive = archive_path(java)
    if not archive.exists():
        make(spark_submit, env, archive, say)
    return ["--driver-java-options", f"-XX:SharedArchiveFile={archive}"] if archive.exists() else []
