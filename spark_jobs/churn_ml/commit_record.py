"""Which attempt may commit a run's partition: a small record each new attempt takes over.

An attempt *takes* the record when it starts: it writes its own id, whatever the record held,
so the newest attempt holds the partition. It *commits* only while it still holds it:

- on a filesystem, under an exclusive lock on ``<record>.lock`` held from the check to the
  end of the commit, which a takeover also waits for;
- on GCS, by rewriting the record with ``if_generation_match`` of the generation it took: a
  takeover since then makes that write, and so the commit, fail.

A superseded attempt's commit raises ``Superseded`` before anything of it is visible; its job
then discards what it staged. The record ends naming the attempt that committed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

from churn_core import layout
from churn_ml import cli

log = logging.getLogger(__name__)


class Superseded(cli.JobError):
    """A later attempt took the partition over: this one commits nothing."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _document(attempt: str, state: str) -> str:
    return json.dumps({"attempt": attempt, "state": state, "at": _now()})


def _superseded(uri: str, mine: str, text: str) -> Superseded:
    held = json.loads(text)
    return Superseded(
        f"attempt {mine} no longer holds {uri}: attempt {held['attempt']} took it over "
        f"({held['state']} at {held['at']}), so this attempt commits nothing"
    )


@dataclass
class Claim:
    """One attempt's hold on a partition's record (``take`` makes one)."""

    uri: str
    attempt: str
    generation: int | None = None  # on GCS: the record's generation this attempt wrote

    @contextlib.contextmanager
    def committing(self) -> Iterator[None]:
        """Run the commit inside, only while this attempt holds the record."""
        if self.uri.startswith("gs://"):
            with self._committing_gcs():
                yield
        else:
            with _locked(self.uri) as path:
                with open(path) as f:
                    text = f.read()
                if json.loads(text)["attempt"] != self.attempt:
                    raise _superseded(self.uri, self.attempt, text)
                yield
                _write_local(path, _document(self.attempt, "committed"))

    @contextlib.contextmanager
    def _committing_gcs(self) -> Iterator[None]:
        from google.api_core.exceptions import PreconditionFailed

        blob = _blob(self.uri)
        try:
            blob.upload_from_string(
                _document(self.attempt, "committing"),
                content_type="application/json",
                if_generation_match=self.generation,
            )
        except PreconditionFailed:
            raise _superseded(self.uri, self.attempt, blob.download_as_text()) from None
        yield
        try:
            blob.upload_from_string(
                _document(self.attempt, "committed"),
                content_type="application/json",
                if_generation_match=blob.generation,
            )
        except PreconditionFailed:  # taken over during the commit: the newer attempt's to write
            log.warning("%s was taken over while attempt %s committed", self.uri, self.attempt)


def take(uri: str, attempt: str) -> Claim:
    """Make ``attempt`` the holder of the record at ``uri`` (a ``gs://`` object or a local
    file); a commit of the attempt it replaces is refused from now on."""
    document = _document(attempt, "taken")
    if uri.startswith("gs://"):
        blob = _blob(uri)
        blob.upload_from_string(document, content_type="application/json")
        return Claim(uri, attempt, blob.generation)
    with _locked(uri) as path:
        _write_local(path, document)
    return Claim(uri, attempt)


class Unclaimed:
    """A job run without a record: it commits unconditionally."""

    def committing(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()


def add_arguments(p) -> None:
    """``--attempt`` and ``--commit-record-uri`` of a job that commits a run's partitions."""
    cli.add_attempt(p, "its staging is its own")
    p.add_argument(
        "--commit-record-uri",
        help="the run's commit record: this attempt takes it over when it starts and commits "
        "only while it holds it (none: commit unconditionally)",
    )


def from_args(args) -> Claim | Unclaimed:
    """Take the record the job's arguments name, first thing: the job's hold on its run."""
    if not args.commit_record_uri:
        return Unclaimed()
    claim = take(args.commit_record_uri, args.attempt)
    log.info("attempt %s holds %s", args.attempt, args.commit_record_uri)
    return claim


def _blob(uri: str):
    from google.cloud import storage  # on the Dataproc image; never needed locally

    bucket, name = layout.gcs_object(uri)
    return storage.Client().bucket(bucket).blob(name)


def _local_path(uri: str) -> str:
    if "://" in uri and not uri.startswith("file://"):
        raise ValueError(f"a commit record is a gs:// object or a local file, not {uri!r}")
    return os.path.abspath(uri.removeprefix("file://"))


@contextlib.contextmanager
def _locked(uri: str) -> Iterator[str]:
    """The record's path, under an exclusive lock on its lock file (freed if the process
    dies)."""
    path = _local_path(uri)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield path


def _write_local(path: str, text: str) -> None:
    staged = f"{path}.{os.getpid()}.tmp"
    with open(staged, "w") as f:
        f.write(text)
    os.replace(staged, path)
