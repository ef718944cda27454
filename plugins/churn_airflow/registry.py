"""The model registry: one JSON document of model versions with a champion pointer.

Decisions are pure functions of the document; the two stores make read-modify-write atomic
and safe under concurrent runs: a file lock plus rename locally, generation preconditions
on GCS. Manual rollback: ``python -m churn_airflow.registry --root ROOT promote VERSION``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from churn_ml.layout import MODEL_NAME

CHAMPION, CANDIDATE, BELOW_THRESHOLD, RETIRED = (
    "champion",
    "candidate",
    "below-threshold",
    "retired",
)


def registry_uri(artifact_root: str) -> str:
    return f"{artifact_root.rstrip('/')}/registry/{MODEL_NAME}.json"


def empty() -> dict:
    return {"model": MODEL_NAME, "champion": None, "versions": [], "history": []}


@dataclass(frozen=True)
class Candidate:
    """A model one attempt of a run produced, from its metrics.json."""

    pipeline_id: str
    operation: str
    attempt: str
    model_uri: str
    metrics: dict

    @property
    def version(self) -> str:
        return f"{self.pipeline_id}-{self.operation}-{self.attempt}"

    @property
    def au_pr(self) -> float:
        return float(self.metrics["au_pr"])

    @classmethod
    def from_metrics(cls, doc: dict, attempt: str) -> Candidate:
        return cls(doc["pipeline_id"], doc["operation"], attempt, doc["model_uri"], doc["metrics"])


def find(doc: dict, version: str | None) -> dict | None:
    return next((v for v in doc["versions"] if v["version"] == version), None)


def promote(
    doc: dict, candidates: list[Candidate], threshold: float, now: str
) -> tuple[dict, dict]:
    """Register an attempt's candidates as new versions; make the best one champion if it
    passes the threshold and beats the current champion's test AUPR (or there is none).
    Returns (document, decision). Registering the same versions again replaces their entries.
    """
    if not candidates:
        raise ValueError("a run must produce at least one model to register")
    new = {c.version for c in candidates}
    champion = find(doc, doc["champion"])
    baseline = None if champion is None or champion["version"] in new else champion
    best = max(candidates, key=lambda c: (c.au_pr, c.operation == "training"))
    against = f"{baseline['version']} ({baseline['metrics']['au_pr']:.4f})" if baseline else None
    if best.au_pr < threshold:
        promoted, reason = (
            False,
            f"best test AUPR {best.au_pr:.4f} is below the threshold {threshold}",
        )
    elif baseline and best.au_pr <= baseline["metrics"]["au_pr"]:
        promoted, reason = (
            False,
            f"best test AUPR {best.au_pr:.4f} does not beat champion {against}",
        )
    else:
        promoted = True
        reason = (
            f"test AUPR {best.au_pr:.4f} passes {threshold} and beats {against or 'no champion'}"
        )
    new_champion = best.version if promoted else doc["champion"]
    versions = [dict(v) for v in doc["versions"] if v["version"] not in new]
    for v in versions:
        if v["version"] == new_champion:
            v["status"] = CHAMPION
        elif v["status"] == CHAMPION:
            v["status"] = RETIRED
    for c in candidates:
        status = CANDIDATE if c.au_pr >= threshold else BELOW_THRESHOLD
        versions.append({
            "version": c.version,
            "pipeline_id": c.pipeline_id,
            "operation": c.operation,
            "attempt": c.attempt,
            "model_uri": c.model_uri,
            "metrics": c.metrics,
            "registered_at": now,
            "status": CHAMPION if c.version == new_champion else status,
        })  # fmt: skip
    decision = {"promoted": promoted, "version": best.version, "champion": new_champion,
                "reason": reason, "at": now}  # fmt: skip
    history = [*doc["history"], decision] if promoted else doc["history"]
    return {**doc, "champion": new_champion, "versions": versions, "history": history}, decision


def set_champion(doc: dict, version: str, now: str) -> dict:
    """Manual promotion or rollback to a registered version."""
    if find(doc, version) is None:
        known = [v["version"] for v in doc["versions"]]
        raise ValueError(f"version {version!r} is not registered; known: {known}")
    versions = []
    for v in doc["versions"]:
        status = CHAMPION if v["version"] == version else v["status"]
        if v["status"] == CHAMPION and v["version"] != version:
            status = RETIRED
        versions.append({**v, "status": status})
    event = {
        "promoted": True,
        "version": version,
        "champion": version,
        "reason": "manual",
        "at": now,
    }
    return {**doc, "champion": version, "versions": versions, "history": [*doc["history"], event]}


def champion(doc: dict) -> dict:
    entry = find(doc, doc["champion"])
    if entry is None:
        raise LookupError("the registry has no champion yet: run the training DAG first")
    return entry


# --- stores --------------------------------------------------------------------------------


class LocalStore:
    """A JSON file updated under an exclusive lock, written to a temp file and renamed."""

    def __init__(self, path: str):
        self.path = path.removeprefix("file://")

    def read(self) -> dict:
        try:
            with open(self.path) as f:
                return json.load(f)
        except FileNotFoundError:
            return empty()

    def update(self, change: Callable[[dict], tuple[dict, Any]]) -> Any:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with open(self.path + ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            doc, result = change(self.read())
            fd, staged = tempfile.mkstemp(dir=os.path.dirname(self.path), suffix=".tmp")
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump(doc, f, indent=2)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(staged, self.path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(staged)
                raise
        return result


class GcsStore:
    """A GCS object updated with ``if_generation_match``; a lost race re-reads and retries."""

    def __init__(self, uri: str, client=None, attempts: int = 10):
        bucket, _, self.name = uri.removeprefix("gs://").partition("/")
        if client is None:
            from google.cloud import storage

            client = storage.Client()
        self.bucket = client.bucket(bucket)
        self.attempts = attempts

    def _get(self) -> tuple[dict, int]:
        """The document and its generation, read from that very generation (0: none yet)."""
        blob = self.bucket.get_blob(self.name)
        if blob is None:
            return empty(), 0
        generation = blob.generation  # before the download, which may reset it
        return json.loads(blob.download_as_text(if_generation_match=generation)), generation

    def read(self) -> dict:
        return self._until_unchanged(lambda: self._get()[0])

    def update(self, change: Callable[[dict], tuple[dict, Any]]) -> Any:
        def read_change_write():
            current, generation = self._get()
            doc, result = change(current)
            self.bucket.blob(self.name).upload_from_string(
                json.dumps(doc, indent=2),
                content_type="application/json",
                if_generation_match=generation,
            )
            return result

        return self._until_unchanged(read_change_write)

    def _until_unchanged(self, step: Callable[[], Any]) -> Any:
        """``step`` again while another writer changes the object under it (412)."""
        from google.api_core.exceptions import PreconditionFailed

        for _ in range(self.attempts):
            with contextlib.suppress(PreconditionFailed):
                return step()
        raise RuntimeError(f"registry gs://{self.bucket.name}/{self.name} kept changing; retry")


def store(artifact_root: str) -> LocalStore | GcsStore:
    uri = registry_uri(artifact_root)
    return GcsStore(uri) if uri.startswith("gs://") else LocalStore(uri)


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="churn registry", description="Show the churn model registry or roll back."
    )
    parser.add_argument("--root", required=True, help="artifact root: a folder or gs://bucket")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("show", help="print the registry document")
    promote_cmd = commands.add_parser("promote", help="make a registered version the champion")
    promote_cmd.add_argument("version")
    args = parser.parse_args(argv)
    registry = store(args.root)
    if args.command == "promote":
        try:
            registry.update(lambda doc: (set_champion(doc, args.version, utc_now()), None))
        except ValueError as err:
            raise SystemExit(f"churn registry: {err}") from None
    print(json.dumps(registry.read(), indent=2))


if __name__ == "__main__":
    main()
