"""The runtime manifest: the local Spark is the default runtime's, and bad runtimes are refused."""

from __future__ import annotations

import re
from pathlib import Path

import pyspark
import pytest

from churn_core import runtime

REPO = Path(__file__).resolve().parents[1]


def minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def test_installed_pyspark_is_the_default_runtimes_spark():
    default = runtime.runtime(runtime.DEFAULT)
    assert minor(pyspark.__version__) == default.spark, (
        f"pyspark {pyspark.__version__} is installed but Dataproc runtime {runtime.DEFAULT} "
        f"ships Spark {default.spark}: pin pyspark to it in requirements.txt and `make lock`"
    )


def test_the_lock_pins_the_default_runtimes_spark():
    (pinned,) = re.findall(r"^pyspark==(\S+)", (REPO / "requirements.lock").read_text(), re.M)
    assert minor(pinned) == runtime.runtime(runtime.DEFAULT).spark


def test_the_default_runtime_is_3_0():
    default = runtime.runtime(runtime.DEFAULT)
    assert (default.version, default.spark, default.python, default.java) == (
        "3.0",
        "4.0",
        "3.12",
        "21",
    )
    assert not default.history_server
    assert default.apis == ("dataprocrm.googleapis.com",)


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("2.3", "Dataproc runtime 2.3 ships Spark 3.5 but the jobs need Spark 4.0: use 3.0"),
        ("2.2", "Dataproc runtime 2.2 ships Spark 3.5 but the jobs need Spark 4.0: use 3.0"),
        ("9.9", "unknown Dataproc runtime version '9.9': use one of ['3.0']"),
        ("3.0.14", "unknown Dataproc runtime version '3.0.14': use one of ['3.0']"),
        ("", "unknown Dataproc runtime version '': use one of ['3.0']"),
    ],
)
def test_a_runtime_the_jobs_cannot_run_on_is_refused_in_one_sentence(version, message):
    with pytest.raises(ValueError) as refused:
        runtime.runtime(version)
    assert str(refused.value) == message


def test_a_history_server_on_3_0_is_refused():
    cluster = "projects/p/regions/r/clusters/phs"
    with pytest.raises(ValueError) as refused:
        runtime.check_batch_settings("3.0", cluster)
    assert str(refused.value) == (
        "Dataproc runtime 3.0 does not support a Persistent History Server: unset the history "
        f"server setting ({cluster}) and use the Spark UI of the batch instead"
    )
    assert runtime.check_batch_settings("3.0", "") is runtime.RUNTIMES["3.0"]
