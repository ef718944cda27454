"""The test's side of the fake cloud: its inputs, what it was asked, and what it holds.

The Airflow processes run ``fake_cloud/sitecustomize.py`` (copied by ``install``); this module
writes the state folder they share and reads it back. The formats are described in that file's
docstring; the checks of the script and the answers are its own (loaded from the file, which
does nothing in a process without ``FAKE_CLOUD_DIR``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

SITECUSTOMIZE = Path(__file__).resolve().parent / "fake_cloud" / "sitecustomize.py"
INPUTS = ("script.json", "bigquery.json", "on_success.py")
STATE = ("pipeline_jobs.json", "batches.json", "requests.jsonl", "events.jsonl")


def _load_fake():
    spec = importlib.util.spec_from_file_location("_fake_cloud_sitecustomize", SITECUSTOMIZE)
    module = importlib.util.module_from_spec(spec)
    saved = os.environ.pop("FAKE_CLOUD_DIR", None)  # loaded for its checks: never installed
    try:
        spec.loader.exec_module(module)
    finally:
        if saved is not None:
            os.environ["FAKE_CLOUD_DIR"] = saved
    return module


fake = _load_fake()
KINDS = fake.KINDS
FakeCloudError = fake.FakeCloudError


def install(folder: str | os.PathLike) -> str:
    """Copies ``sitecustomize.py`` into ``folder`` (created): put it on ``PYTHONPATH``."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    shutil.copy2(SITECUSTOMIZE, Path(folder) / "sitecustomize.py")
    return str(folder)


def env(state_dir: str | os.PathLike, sitecustomize_dir: str | os.PathLike) -> dict[str, str]:
    """The variables of a process that runs against the fake cloud (with the metadata server's
    ``metadata_server.env(address)``), keeping any ``PYTHONPATH`` of this process after it."""
    path = [str(sitecustomize_dir), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"FAKE_CLOUD_DIR": str(state_dir), "PYTHONPATH": os.pathsep.join(path)}


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def prepare(
    state_dir: str | os.PathLike,
    script: dict,
    bigquery_answers: list,
    on_success_source: str | None = None,
) -> Path:
    """A fresh fake cloud in ``state_dir``: these inputs, no jobs, no requests yet.

    ``on_success_source`` is Python defining ``on_success(kind, resource, state_dir)``; it is
    compiled here so that a syntax error shows in the test, not in an Airflow log.
    """
    folder = Path(state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for name in (*INPUTS, *STATE):
        (folder / name).unlink(missing_ok=True)
    set_script(folder, script)
    _write(folder / "bigquery.json", json.dumps(fake.check_answers(bigquery_answers), indent=1))
    if on_success_source is not None:
        compile(on_success_source, str(folder / "on_success.py"), "exec")
        _write(folder / "on_success.py", on_success_source)
    return folder


def set_script(state_dir: str | os.PathLike, script: dict) -> None:
    """Replaces the script (it is read on every call, so this also works mid-run)."""
    _write(Path(state_dir) / "script.json", json.dumps(fake.check_script(script), indent=1))


def _lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def requests(state_dir: str | os.PathLike) -> list[dict]:
    """Every call, in order: ``{"time", "pid", "method", "request", "principal", "state",
    "poll", "error"}`` (``state``/``poll`` only for job calls; ``error`` null when it
    succeeded)."""
    return _lines(Path(state_dir) / "requests.jsonl")


def events(state_dir: str | os.PathLike) -> list[dict]:
    """The runs of ``on_success``: ``{"time", "pid", "kind", "name", "outcome", "error"?}``."""
    return _lines(Path(state_dir) / "events.jsonl")


def records(state_dir: str | os.PathLike, kind: str) -> dict[str, dict]:
    """The jobs of ``kind`` by name: ``{"resource", "polls", "outputs", ...}``."""
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {KINDS}")
    path = Path(state_dir) / f"{kind}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def resources(state_dir: str | os.PathLike, kind: str) -> dict[str, dict]:
    """The jobs of ``kind`` (``pipeline_jobs`` or ``batches``) by name, each its proto's JSON
    (snake_case field names, enum names) as of its last poll."""
    return {name: record["resource"] for name, record in records(state_dir, kind).items()}
