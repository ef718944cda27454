"""The JVM class archive of local spark-submits: made once by a warm-up job, then used; a
failed warm-up, a warm-up in another process or a machine without Java leave jobs as they were.
A stand-in spark-submit writes the archive the JVM would (the real one: ``make bench``)."""

from __future__ import annotations

import fcntl
import os
import sys

import pytest

from churn_core import class_sharing


def stand_in(tmp_path, exit_code: int = 0) -> str:
    """A spark-submit that writes the archive it is asked for, then exits with ``exit_code``."""
    script = tmp_path / "spark-submit"
    script.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do case "$a" in -XX:ArchiveClassesAtExit=*) f="${a#*=}";; esac; done\n'
        'echo "$@" >> "$(dirname "$0")/calls"\n'
        'echo classes > "$f"\n'
        f"exit {exit_code}\n"
    )
    script.chmod(0o755)
    return str(script)


@pytest.fixture
def environment(tmp_path, monkeypatch):
    """This Python environment, moved to ``tmp_path`` (where the archive lives)."""
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))
    return tmp_path / "venv" / "var" / "churn"


def test_the_first_job_makes_the_archive_and_every_later_one_uses_it(tmp_path, environment):
    said, submit = [], stand_in(tmp_path)
    options = class_sharing.driver_options(submit, dict(os.environ), said.append)
    (archive,) = environment.glob("*.jsa")
    assert options == ["--driver-java-options", f"-XX:SharedArchiveFile={archive}"]
    assert archive.read_text() == "classes\n"
    assert said == [f"making the JVM class archive {archive} (once for this environment)"]
    (call,) = (tmp_path / "calls").read_text().splitlines()
    assert call.startswith("--master local[1] --conf spark.ui.enabled=false --driver-java-options")
    assert class_sharing.driver_options(submit, dict(os.environ), said.append) == options
    assert len(said) == 1 and len((tmp_path / "calls").read_text().splitlines()) == 1


def test_a_failed_warm_up_leaves_no_archive_and_the_job_starts_without(tmp_path, environment):
    said = []
    options = class_sharing.driver_options(stand_in(tmp_path, 3), dict(os.environ), said.append)
    assert options == []
    assert said[-1].startswith("no JVM class archive (exit code 3)")
    assert [p.suffix for p in environment.iterdir()] == [".lock"]  # no archive, nothing staged


def test_while_another_process_makes_it_a_job_starts_without(tmp_path, environment):
    archive = class_sharing.archive_path(class_sharing.java_binary())
    archive.parent.mkdir(parents=True)
    with open(archive.with_suffix(".lock"), "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another open file: it conflicts like another process
        assert class_sharing.driver_options(stand_in(tmp_path), {}, print) == []
    assert not (tmp_path / "calls").exists() and not archive.exists()


def test_without_java_there_is_no_archive(tmp_path, environment, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    assert class_sharing.driver_options(stand_in(tmp_path), {}, print) == []
    assert not environment.exists()
