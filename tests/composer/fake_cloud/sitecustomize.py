"""The offline Google cloud of the Composer test: Google's client boundary, faked in every process.

Copied to a folder on the ``PYTHONPATH`` of every Airflow process, this module is imported by
``site`` at start-up. It does nothing unless ``FAKE_CLOUD_DIR`` names the state folder shared by
all processes. Then it installs a ``sys.meta_path`` hook that patches, right after their module is
first imported (no Google library is imported here: they cost seconds), the RPC methods of the
real client classes that Airflow's Google provider calls:

- ``google.cloud.aiplatform_v1.PipelineServiceClient``: ``create_pipeline_job`` (what
  ``aiplatform.PipelineJob.submit()`` and the provider's hook call), ``get_pipeline_job``,
  ``cancel_pipeline_job``; ``PipelineServiceAsyncClient`` (``RunPipelineJobTrigger``):
  ``get_pipeline_job``, ``cancel_pipeline_job``;
- ``google.cloud.dataproc_v1.BatchControllerClient``: ``create_batch`` (a real
  ``google.api_core.operation.Operation``), ``get_batch``, ``delete_batch``, ``list_batches``;
  ``BatchControllerAsyncClient`` (``DataprocBatchTrigger``): ``get_batch``, ``delete_batch``;
- ``google.cloud.resourcemanager_v3.ProjectsClient.get_project`` (the aiplatform SDK checks
  that the pipeline root's bucket belongs to the project): from ``script.json``'s ``projects``;
- ``google.cloud.bigquery.Client.query``: answered from ``bigquery.json``.

Everything above these methods stays real: the request coercion (a dict with a field the proto
does not have fails as it would), the credentials (each call gets a token for the client's
credentials, from the metadata server under ADC), the universe-domain check, the ``retry``
argument (GAPIC's default for these methods is none; a caller's ``Retry``, like the aiplatform
SDK's waits, retries a scripted 503 as the real client would, each attempt a poll). What the
services would refuse is refused with their exception (``InvalidArgument``: a job id not
matching its pattern, a Batch without its main file, a missing or mistyped pipeline parameter,
a location another regional endpoint serves; ``AlreadyExists``; ``NotFound``;
``FailedPrecondition``: cancelling an ended job). Every other gRPC channel or HTTP call to
``*.googleapis.com`` fails at once with ``FakeCloudError`` instead of hanging on the
unreachable network (and is logged as ``UNFAKED ...``).

The state folder (``FAKE_CLOUD_DIR``), written under an ``fcntl`` lock with atomic renames:

- ``script.json`` (the test's): how jobs live, per kind (``pipeline_jobs``, ``batches``)::

      {"pipeline_jobs": {"polls_until_done": 2, "final_state": "PIPELINE_STATE_SUCCEEDED",
                         "fail_polls": [1], "error_message": "...",
                         "by_id_prefix": {"churn-x": {"final_state": "PIPELINE_STATE_FAILED"}}},
       "batches": {"polls_until_done": 1, "final_state": "SUCCEEDED"},
       "projects": {"my-proj": "1234"}}

  Each status read of a job (``get``; for a batch also its operation's refresh) is poll
  number n = 1, 2, ... of that job. A poll whose n is in ``fail_polls`` raises
  ``ServiceUnavailable``. Otherwise the job is RUNNING while n < ``polls_until_done``, then in
  ``final_state`` for good (FAILED carries ``error_message``). A job created is PENDING
  (``PIPELINE_STATE_PENDING``). The longest ``by_id_prefix`` key the job id starts with
  is merged over the kind's settings. Defaults: 1, SUCCEEDED, [], "scripted failure".
  The script is read on every call: a test may change it mid-run.
  ``projects`` maps project ids to numbers (match the GCS emulator's bucket ``projectNumber``);
  another project is 403 ``PermissionDenied``.
- ``bigquery.json`` (the test's): ``[{"contains": [str, ...], "rows": [[...], ...],
  "columns": [str, ...] (optional), "params": {name: value} (optional)}]``: a query gets the
  rows of the first answer whose substrings are all in its SQL (and whose params equal the
  query's, in the API's string form); no answer: ``FakeCloudError`` naming the SQL.
- ``on_success.py`` (the test's, optional): ``on_success(kind, resource, state_dir)`` runs once
  per job (``kind``: ``pipeline_jobs`` or ``batches``; ``resource``: the job's JSON as it is
  about to be answered SUCCEEDED), in the process whose poll finds it done, under the lock and
  before that poll answers: the outputs exist before anyone sees SUCCEEDED. It runs with that
  process's environment (``STORAGE_EMULATOR_HOST`` for GCS). If it raises, the job ends FAILED
  with the traceback as its error. It must not call the faked clients.
- ``pipeline_jobs.json``, ``batches.json``: ``{name: {"resource": <proto as JSON, snake_case>,
  "polls": n, "outputs": null | "done" | "failed", ...}}``.
- ``requests.jsonl``: one line per call (each attempt under a retry): ``{"time", "pid",
  "method", "request", "principal", "error"}`` plus, for job calls, ``"state"`` answered and
  ``"poll"``; ``method`` is ``<ClientClass>.<method>`` (``operations.get_operation`` for a
  batch operation's refresh); ``request`` the request proto's JSON (snake_case, enum names, no
  defaults), for BigQuery ``{"query", "job_config", "parameters", "project", "location",
  "job_id"}``; ``error`` null or ``"Type: message"``.
- ``events.jsonl``: one line per run of ``on_success``.
"""

from __future__ import annotations

import os
import sys

ENV = "FAKE_CLOUD_DIR"
KINDS = ("pipeline_jobs", "batches")
PIPELINE_JOB_ID = r"[a-z][-a-z0-9]{0,127}"
BATCH_ID = r"[a-z0-9][-a-z0-9]{2,61}[a-z0-9]"
LABEL_KEY, LABEL_VALUE = r"[a-z][a-z0-9_-]{0,62}", r"[a-z0-9_-]{0,63}"
SCRIPT_DEFAULTS = {
    "polls_until_done": 1,
    "final_state": None,
    "fail_polls": [],
    "error_message": "scripted failure",
}
# Per kind: the states a job passes through, and the terminal ones.
STATES = {
    "pipeline_jobs": {
        "pending": "PIPELINE_STATE_PENDING",
        "running": "PIPELINE_STATE_RUNNING",
        "succeeded": "PIPELINE_STATE_SUCCEEDED",
        "failed": "PIPELINE_STATE_FAILED",
        "cancelled": "PIPELINE_STATE_CANCELLED",
    },
    "batches": {
        "pending": "PENDING",
        "running": "RUNNING",
        "succeeded": "SUCCEEDED",
        "failed": "FAILED",
        "cancelled": "CANCELLED",
    },
}


class FakeCloudError(RuntimeError):
    """A call the fake cloud cannot answer: not faked, not scripted, or a broken test input."""


# --- Test inputs ----------------------------------------------------------------------------


def terminal_states(kind: str) -> set[str]:
    s = STATES[kind]
    return {s["succeeded"], s["failed"], s["cancelled"]}


def _check_job_script(kind: str, where: str, spec: object, top: bool) -> None:
    if not isinstance(spec, dict):
        raise FakeCloudError(f"script.json {where}: expected an object, got {spec!r}")
    allowed = set(SCRIPT_DEFAULTS) | ({"by_id_prefix"} if top else set())
    unknown = set(spec) - allowed
    if unknown:
        raise FakeCloudError(f"script.json {where}: unknown keys {sorted(unknown)}")
    polls = spec.get("polls_until_done", 0)
    if not isinstance(polls, int) or isinstance(polls, bool) or polls < 0:
        raise FakeCloudError(f"script.json {where}.polls_until_done: not a count: {polls!r}")
    fails = spec.get("fail_polls", [])
    if not isinstance(fails, list) or not all(isinstance(n, int) and n >= 1 for n in fails):
        raise FakeCloudError(f"script.json {where}.fail_polls: not poll numbers: {fails!r}")
    final = spec.get("final_state")
    if final is not None and final not in terminal_states(kind):
        raise FakeCloudError(
            f"script.json {where}.final_state: {final!r} is not one of "
            f"{sorted(terminal_states(kind))}"
        )
    if not isinstance(spec.get("error_message", ""), str):
        raise FakeCloudError(f"script.json {where}.error_message: not a string")
    for prefix, override in (spec.get("by_id_prefix") or {}).items():
        _check_job_script(kind, f"{where}.by_id_prefix[{prefix!r}]", override, top=False)


def check_script(script: object) -> dict:
    """The script, if it is one (else ``FakeCloudError`` saying what is wrong)."""
    if not isinstance(script, dict):
        raise FakeCloudError(f"script.json: expected an object, got {script!r}")
    unknown = set(script) - {*KINDS, "projects"}
    if unknown:
        raise FakeCloudError(
            f"script.json: unknown keys {sorted(unknown)}; known: {[*KINDS, 'projects']}"
        )
    for kind in KINDS:
        if kind in script:
            _check_job_script(kind, kind, script[kind], top=True)
    projects = script.get("projects", {})
    if not isinstance(projects, dict) or not all(
        isinstance(k, str) and str(v).isdigit() for k, v in projects.items()
    ):
        raise FakeCloudError(f"script.json projects: not {{project id: number}}: {projects!r}")
    return script


def job_script(script: dict, kind: str, job_id: str) -> dict:
    """The settings of one job: the kind's, under its longest matching ``by_id_prefix``."""
    spec = script.get(kind) or {}
    settings = dict(SCRIPT_DEFAULTS, final_state=STATES[kind]["succeeded"])
    settings.update({k: v for k, v in spec.items() if k != "by_id_prefix"})
    prefixes = [p for p in (spec.get("by_id_prefix") or {}) if job_id.startswith(p)]
    if prefixes:
        settings.update(spec["by_id_prefix"][max(prefixes, key=len)])
    if settings["final_state"] is None:
        settings["final_state"] = STATES[kind]["succeeded"]
    return settings


_ANSWER_KEYS = {"contains", "rows", "columns", "params"}


def check_answers(answers: object) -> list:
    """The BigQuery answers, if they are (else ``FakeCloudError`` saying what is wrong)."""
    if not isinstance(answers, list):
        raise FakeCloudError(f"bigquery.json: expected a list, got {answers!r}")
    for i, answer in enumerate(answers):
        if not isinstance(answer, dict) or set(answer) - _ANSWER_KEYS:
            raise FakeCloudError(f"bigquery.json[{i}]: keys must be among {sorted(_ANSWER_KEYS)}")
        contains = answer.get("contains")
        if not contains or not all(isinstance(s, str) for s in contains):
            raise FakeCloudError(f"bigquery.json[{i}].contains: a non-empty list of strings")
        rows = answer.get("rows")
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise FakeCloudError(f"bigquery.json[{i}].rows: a list of lists")
        columns = answer.get("columns")
        if columns is not None and any(len(r) != len(columns) for r in rows):
            raise FakeCloudError(f"bigquery.json[{i}]: a row's length differs from columns'")
    return answers


# --- State ----------------------------------------------------------------------------------


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _read_json(path: str, default):
    import json

    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def _write_json(path: str, value) -> None:
    import json
    import tempfile

    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(value, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with _suppress():
            os.unlink(tmp)
        raise


def _suppress():
    import contextlib

    return contextlib.suppress(OSError)


def _append_line(path: str, entry: dict) -> None:
    import json

    line = json.dumps(entry, sort_keys=True, default=str) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)


_local = None


def _thread_state():
    global _local
    if _local is None:
        import threading

        _local = threading.local()
    return _local


class _Locked:
    """The whole fake cloud, exclusively, for one call (an ``fcntl`` lock on ``.lock``)."""

    def __init__(self, root: str):
        self.root = root
        self._fd = -1
        self._stores: dict[str, dict] = {}
        self._dirty: set[str] = set()

    def __enter__(self):
        import fcntl

        state = _thread_state()
        if getattr(state, "inside", False):
            raise FakeCloudError(
                "the fake cloud was called while it answers another call (from on_success?)"
            )
        self._fd = os.open(os.path.join(self.root, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        state.inside = True
        return self

    def __exit__(self, *exc):
        import fcntl

        try:
            for kind in self._dirty:
                _write_json(self._path(f"{kind}.json"), self._stores[kind])
        finally:
            _thread_state().inside = False
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)

    def _path(self, name: str) -> str:
        return os.path.join(self.root, name)

    def store(self, kind: str, *, write: bool = False) -> dict:
        if kind not in self._stores:
            self._stores[kind] = _read_json(self._path(f"{kind}.json"), {})
        if write:
            self._dirty.add(kind)
        return self._stores[kind]

    def script(self) -> dict:
        return check_script(_read_json(self._path("script.json"), {}))

    def answers(self) -> list:
        return check_answers(_read_json(self._path("bigquery.json"), []))

    def log(self, entry: dict) -> None:
        _append_line(self._path("requests.jsonl"), entry)

    def event(self, entry: dict) -> None:
        _append_line(self._path("events.jsonl"), entry)


def _root() -> str:
    root = os.environ.get(ENV)
    if not root or not os.path.isdir(root):
        raise FakeCloudError(f"{ENV}={root!r} is not a folder")
    return root


def _call(method: str, request: dict, handler, principal: str | None = None):
    """Runs ``handler(locked, note)`` as one locked transaction and logs the call."""
    note: dict = {}
    entry = {"time": _now(), "pid": os.getpid(), "method": method, "request": request}
    entry["principal"] = principal
    with _Locked(_root()) as locked:
        try:
            result = handler(locked, note)
        except BaseException as exc:
            entry.update(note, error=f"{type(exc).__name__}: {exc}")
            locked.log(entry)
            raise
        entry.update(note, error=None)
        locked.log(entry)
        return result


def _log_failed_request(method: str, raw, exc: BaseException) -> None:
    request = raw if isinstance(raw, dict) else repr(raw)
    entry = {"time": _now(), "pid": os.getpid(), "method": method, "request": request}
    entry.update(principal=None, error=f"{type(exc).__name__}: {exc}")
    with _Locked(_root()) as locked:
        locked.log(entry)


# --- Protos ---------------------------------------------------------------------------------


def _to_dict(message) -> dict:
    """A proto-plus message as its JSON (snake_case field names, enum names, no defaults)."""
    import json

    return json.loads(
        type(message).to_json(
            message,
            preserving_proto_field_name=True,
            use_integers_for_enums=False,
            always_print_fields_with_no_presence=False,
            indent=None,
        )
    )


def _from_dict(cls, value: dict):
    import json

    return cls.from_json(json.dumps(value))


def _coerce(method: str, request_type, request, flattened: dict):
    """What the GAPIC method does with its arguments (a proto, a dict, or flattened fields)."""
    try:
        if request is not None and any(v is not None for v in flattened.values()):
            raise ValueError(
                "If the `request` argument is set, then none of the individual field "
                "arguments should be set."
            )
        if not isinstance(request, request_type):
            request = request_type(request)
            for field, value in flattened.items():
                if value is not None:
                    setattr(request, field, value)
        return request
    except Exception as exc:
        _log_failed_request(method, request if request is not None else flattened, exc)
        raise


def _gapic(client):
    """The sync GAPIC client behind ``client`` (an async client wraps one as ``_client``)."""
    return getattr(client, "_client", client)


def _authorize(credentials, url: str) -> str | None:
    """Attaches a token to a request as the real transport would (refreshing through the
    metadata server under ADC); returns the principal's email when the credentials have one."""
    if credentials is None:
        raise FakeCloudError("the client has no credentials")
    from google.auth.transport.requests import Request

    headers: dict = {}
    credentials.before_request(Request(), "POST", url, headers)
    if not headers.get("authorization", "").startswith("Bearer "):
        raise FakeCloudError(f"credentials {type(credentials).__name__} gave no bearer token")
    return getattr(credentials, "service_account_email", None) or type(credentials).__name__


def _gapic_principal(client, url: str) -> str | None:
    inner = _gapic(client)
    validate = getattr(inner, "_validate_universe_domain", None)
    if validate is not None:
        validate()
    return _authorize(inner._transport._credentials, url)


def _check_endpoint(client, service: str, location: str) -> None:
    """A regional endpoint serves its own region only (the real services answer 400)."""
    from google.api_core import exceptions

    host = _gapic(client)._transport._host.split(":")[0]
    label = host.split(".")[0]
    if label.endswith(f"-{service}"):
        region = label[: -len(service) - 1]
        if region != location:
            raise exceptions.InvalidArgument(
                f"location {location!r} is not served by the regional endpoint {host}"
            )
    elif service == "dataproc" and label == "dataproc" and location != "global":
        raise exceptions.InvalidArgument(
            f"Region {location!r} invalid or not supported by this endpoint ({host}); "
            "permitted regions: '[global]'"
        )


def _run_sync(retry, attempt):
    """One RPC attempt, or several under a caller's ``Retry`` (GAPIC's default is none)."""
    from google.api_core.retry import Retry

    if isinstance(retry, Retry):
        return retry(attempt)()
    return attempt()


async def _run_async(retry, attempt):
    import asyncio

    from google.api_core.retry import AsyncRetry

    async def once():
        return await asyncio.to_thread(attempt)

    if isinstance(retry, AsyncRetry):
        return await retry(once)()
    return await once()


def _check_labels(labels: dict, what: str, limit: int) -> None:
    import re

    from google.api_core import exceptions

    if len(labels) > limit:
        raise exceptions.InvalidArgument(f"{what}: more than {limit} labels")
    for key, value in labels.items():
        if not re.fullmatch(LABEL_KEY, key) or not re.fullmatch(LABEL_VALUE, value):
            raise exceptions.InvalidArgument(f"{what}: invalid label {key!r}: {value!r}")


def _check_email(value: str, what: str) -> None:
    import re

    from google.api_core import exceptions

    if value and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z]+", value):
        raise exceptions.InvalidArgument(f"{what}: {value!r} is not a service account email")


# --- Jobs: state, polls, outputs ------------------------------------------------------------


def _job_id(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _set_state(kind: str, resource: dict, state: str, message: str | None = None) -> None:
    now = _now()
    s = STATES[kind]
    if kind == "pipeline_jobs":
        resource["update_time"] = now
        if state == s["running"]:
            resource.setdefault("start_time", now)
        if state in terminal_states(kind):
            resource.setdefault("start_time", now)
            resource["end_time"] = now
        if state == s["failed"]:
            resource["error"] = {"code": 9, "message": message or "failed"}
        if state == s["cancelled"]:
            resource["error"] = {"code": 1, "message": message or "CANCELLED"}
    else:
        history = resource.setdefault("state_history", [])
        history.append(
            {"state": resource["state"], "state_start_time": resource.get("state_time", now)}
        )
        resource["state_time"] = now
        if state in (s["failed"], s["cancelled"]):
            resource["state_message"] = message or state
    resource["state"] = state


def _run_outputs(locked: _Locked, kind: str, record: dict, succeeded: dict) -> str | None:
    """The test's ``on_success(kind, resource, state_dir)`` on the job as it is about to be
    SUCCEEDED, once per job; returns its traceback if it raised."""
    import traceback

    path = os.path.join(locked.root, "on_success.py")
    event = {"time": _now(), "pid": os.getpid(), "kind": kind, "name": succeeded["name"]}
    if not os.path.exists(path):
        record["outputs"] = "done"
        locked.event(dict(event, outcome="no on_success.py"))
        return None
    try:
        with open(path, encoding="utf-8") as f:
            code = compile(f.read(), path, "exec")
        namespace = {"__name__": "fake_cloud_on_success", "__file__": path}
        exec(code, namespace)
        namespace["on_success"](kind, _copy(succeeded), locked.root)
    except Exception:
        error = traceback.format_exc()
        record["outputs"] = "failed"
        locked.event(dict(event, outcome="failed", error=error))
        return error
    record["outputs"] = "done"
    locked.event(dict(event, outcome="done"))
    return None


def _copy(value):
    import copy

    return copy.deepcopy(value)


def _poll(locked: _Locked, kind: str, name: str, note: dict) -> dict:
    """One status read of a job: counts it, moves it along its script, may fail transiently."""
    from google.api_core import exceptions

    store = locked.store(kind, write=True)
    record = store.get(name)
    if record is None:
        what = "PipelineJob" if kind == "pipeline_jobs" else "Batch"
        raise exceptions.NotFound(f'{what} "{name}" does not exist')
    record["polls"] += 1
    poll = record["polls"]
    note["poll"] = poll
    settings = job_script(locked.script(), kind, _job_id(name))
    if poll in settings["fail_polls"]:
        raise exceptions.ServiceUnavailable(f"scripted transient failure: poll {poll} of {name}")
    resource = record["resource"]
    s = STATES[kind]
    if resource["state"] not in terminal_states(kind):
        if poll < settings["polls_until_done"]:
            if resource["state"] != s["running"]:
                _set_state(kind, resource, s["running"])
        else:
            final, message = settings["final_state"], settings["error_message"]
            if final == s["succeeded"] and record.get("outputs") is None:
                succeeded = _copy(resource)
                _set_state(kind, succeeded, final)
                error = _run_outputs(locked, kind, record, succeeded)
                if error is not None:  # the job "failed writing its outputs"
                    final, message = s["failed"], f"on_success failed:\n{error}"
            _set_state(kind, resource, final, message)
    note["state"] = resource["state"]
    return resource


def _cancel(locked: _Locked, kind: str, name: str, note: dict) -> dict:
    from google.api_core import exceptions

    record = locked.store(kind, write=True).get(name)
    if record is None:
        raise exceptions.NotFound(f'"{name}" does not exist')
    resource = record["resource"]
    if resource["state"] in terminal_states(kind):
        raise exceptions.FailedPrecondition(
            f"cannot cancel {name}: it is already {resource['state']}"
        )
    _set_state(kind, resource, STATES[kind]["cancelled"], "cancelled by the user")
    note["state"] = resource["state"]
    return resource


# --- Calls of the GAPIC clients -------------------------------------------------------------

NAMES = {
    "pipeline_jobs": r"projects/([^/]+)/locations/([^/]+)/pipelineJobs/([^/]+)",
    "batches": r"projects/([^/]+)/locations/([^/]+)/batches/([^/]+)",
}
SERVICES = {"pipeline_jobs": "aiplatform", "batches": "dataproc"}


def _principal(method: str, request: dict, client, url: str) -> str | None:
    """The caller's principal, as the transport would authorize the call (logged if it fails)."""
    try:
        return _gapic_principal(client, url)
    except Exception as exc:
        _log_failed_request(method, request, exc)
        raise


def _sync_rpc(method: str, client, request, handler, retry):
    """One call of a sync GAPIC method: authorized, then answered under the lock."""
    url = f"https://{_gapic(client)._transport._host.split(':')[0]}/"
    request_dict = _to_dict(request)
    principal = _principal(method, request_dict, client, url)
    return _run_sync(retry, lambda: _call(method, request_dict, handler, principal))


async def _async_rpc(method: str, client, request, handler, retry):
    """One call of an async GAPIC method, answered from a thread (the lock and the files)."""
    url = f"https://{_gapic(client)._transport._host.split(':')[0]}/"
    request_dict = _to_dict(request)

    def attempt():
        principal = _principal(method, request_dict, client, url)
        return _call(method, request_dict, handler, principal)

    return await _run_async(retry, attempt)


def _check_name(client, kind: str, name: str) -> None:
    import re

    from google.api_core import exceptions

    m = re.fullmatch(NAMES[kind], name)
    if not m:
        raise exceptions.InvalidArgument(f"invalid resource name {name!r}: not {NAMES[kind]}")
    _check_endpoint(client, SERVICES[kind], m.group(2))


def _getter(client, kind: str, cls, name: str):
    def handler(locked, note):
        _check_name(client, kind, name)
        return _from_dict(cls, _poll(locked, kind, name, note))

    return handler


def _canceller(client, kind: str, name: str):
    def handler(locked, note):
        _check_name(client, kind, name)
        _cancel(locked, kind, name, note)

    return handler


def _deleter(client, name: str):
    from google.api_core import exceptions

    def handler(locked, note):
        _check_name(client, "batches", name)
        store = locked.store("batches", write=True)
        record = store.get(name)
        if record is None:
            raise exceptions.NotFound(f'Batch "{name}" does not exist')
        state = record["resource"]["state"]
        if state not in terminal_states("batches"):
            raise exceptions.FailedPrecondition(f"cannot delete {name}: it is {state}")
        del store[name]

    return handler


# --- Vertex AI pipelines --------------------------------------------------------------------


def _parameter_type_ok(kind: str, value) -> bool:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return {
        "STRING": isinstance(value, str),
        "NUMBER_INTEGER": number and value == int(value),
        "NUMBER_DOUBLE": number,
        "BOOLEAN": isinstance(value, bool),
        "LIST": isinstance(value, list),
        "STRUCT": isinstance(value, dict),
    }.get(kind, True)


def _check_pipeline_job(job: dict) -> None:
    """What Vertex AI rejects in a PipelineJob (400 INVALID_ARGUMENT)."""
    from google.api_core import exceptions

    def invalid(reason: str):
        return exceptions.InvalidArgument(f"PipelineJob: {reason}")

    spec = job.get("pipeline_spec") or {}
    if not spec and not job.get("template_uri"):
        raise invalid("pipeline_spec is required")
    if len(job.get("display_name", "")) > 128:
        raise invalid("display_name is longer than 128 characters")
    _check_labels(job.get("labels", {}), "PipelineJob.labels", 64)
    _check_email(job.get("service_account", ""), "PipelineJob.service_account")
    runtime = job.get("runtime_config") or {}
    root = runtime.get("gcs_output_directory") or spec.get("defaultPipelineRoot", "")
    if not root:
        raise invalid("runtime_config.gcs_output_directory (the pipeline root) is required")
    if not root.startswith("gs://"):
        raise invalid(f"the pipeline root {root!r} is not a gs:// URI")
    if "parameters" in runtime or not spec:
        return  # the pre-2.1 schema: not checked
    inputs = (spec.get("root") or {}).get("inputDefinitions") or {}
    declared = inputs.get("parameters") or {}
    values = runtime.get("parameter_values") or {}
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise invalid(f"parameters {unknown} are not inputs of the pipeline")
    for name, definition in declared.items():
        if name not in values:
            if "defaultValue" not in definition and not definition.get("isOptional"):
                raise invalid(f"the required parameter {name!r} has no value")
            continue
        kind = definition.get("parameterType", "")
        if not _parameter_type_ok(kind, values[name]):
            raise invalid(f"parameter {name!r} is {values[name]!r}, not a {kind}")
    unknown = sorted(set(runtime.get("input_artifacts") or {}) - set(inputs.get("artifacts") or {}))
    if unknown:
        raise invalid(f"input artifacts {unknown} are not inputs of the pipeline")


def _pipeline_creator(client, request):
    import re
    import uuid

    from google.api_core import exceptions
    from google.cloud.aiplatform_v1.types import PipelineJob

    def handler(locked: _Locked, note: dict):
        m = re.fullmatch(r"projects/([^/]+)/locations/([^/]+)", request.parent)
        if not m:
            raise exceptions.InvalidArgument(f"invalid parent {request.parent!r}")
        _check_endpoint(client, "aiplatform", m.group(2))
        job_id = request.pipeline_job_id or f"pipeline-{uuid.uuid4().hex[:20]}"
        if not re.fullmatch(PIPELINE_JOB_ID, job_id):
            raise exceptions.InvalidArgument(
                f"pipeline_job_id {job_id!r} does not match ^{PIPELINE_JOB_ID}$"
            )
        resource = _to_dict(request.pipeline_job)
        _check_pipeline_job(resource)
        name = f"{request.parent}/pipelineJobs/{job_id}"
        store = locked.store("pipeline_jobs", write=True)
        if name in store:
            raise exceptions.AlreadyExists(f'PipelineJob "{name}" already exists')
        for output_only in ("start_time", "end_time", "error", "job_detail", "schedule_name"):
            resource.pop(output_only, None)
        now = _now()
        resource.update(name=name, state=STATES["pipeline_jobs"]["pending"])
        resource.update(create_time=now, update_time=now)
        job = _from_dict(PipelineJob, resource)
        store[name] = {"resource": _to_dict(job), "polls": 0, "outputs": None}
        note["state"] = resource["state"]
        return job

    return handler


def _patch_pipeline_client(module) -> None:
    from google.api_core.gapic_v1.method import DEFAULT
    from google.cloud.aiplatform_v1.types import PipelineJob
    from google.cloud.aiplatform_v1.types import pipeline_service as ps

    cls = module.PipelineServiceClient
    prefix = "PipelineServiceClient."

    def create_pipeline_job(
        self,
        request=None,
        *,
        parent=None,
        pipeline_job=None,
        pipeline_job_id=None,
        retry=DEFAULT,
        timeout=DEFAULT,
        metadata=(),
    ):
        method = prefix + "create_pipeline_job"
        flat = {"parent": parent, "pipeline_job": pipeline_job, "pipeline_job_id": pipeline_job_id}
        req = _coerce(method, ps.CreatePipelineJobRequest, request, flat)
        return _sync_rpc(method, self, req, _pipeline_creator(self, req), retry)

    def get_pipeline_job(
        self, request=None, *, name=None, retry=DEFAULT, timeout=DEFAULT, metadata=()
    ):
        method = prefix + "get_pipeline_job"
        req = _coerce(method, ps.GetPipelineJobRequest, request, {"name": name})
        handler = _getter(self, "pipeline_jobs", PipelineJob, req.name)
        return _sync_rpc(method, self, req, handler, retry)

    def cancel_pipeline_job(
        self, request=None, *, name=None, retry=DEFAULT, timeout=DEFAULT, metadata=()
    ):
        method = prefix + "cancel_pipeline_job"
        req = _coerce(method, ps.CancelPipelineJobRequest, request, {"name": name})
        _sync_rpc(method, self, req, _canceller(self, "pipeline_jobs", req.name), retry)

    cls.create_pipeline_job = create_pipeline_job
    cls.get_pipeline_job = get_pipeline_job
    cls.cancel_pipeline_job = cancel_pipeline_job


def _patch_pipeline_async_client(module) -> None:
    from google.api_core.gapic_v1.method import DEFAULT
    from google.cloud.aiplatform_v1.types import PipelineJob
    from google.cloud.aiplatform_v1.types import pipeline_service as ps

    cls = module.PipelineServiceAsyncClient
    prefix = "PipelineServiceAsyncClient."

    async def get_pipeline_job(
        self, request=None, *, name=None, retry=DEFAULT, timeout=DEFAULT, metadata=()
    ):
        method = prefix + "get_pipeline_job"
        req = _coerce(method, ps.GetPipelineJobRequest, request, {"name": name})
        handler = _getter(self, "pipeline_jobs", PipelineJob, req.name)
        return await _async_rpc(method, self, req, handler, retry)

    async def cancel_pipeline_job(
        self, request=None, *, name=None, retry=DEFAULT, timeout=DEFAULT, metadata=()
    ):
        method = prefix + "cancel_pipeline_job"
        req = _coerce(method, ps.CancelPipelineJobRequest, request, {"name": name})
        handler = _canceller(self, "pipeline_jobs", req.name)
        await _async_rpc(method, self, req, handler, retry)

    cls.get_pipeline_job = get_pipeline_job
    cls.cancel_pipeline_job = cancel_pipeline_job


# --- Dataproc Serverless batches ------------------------------------------------------------


def _check_batch(batch, batch_dict: dict) -> None:
    """What Dataproc rejects in a Batch (400 INVALID_ARGUMENT)."""
    from google.api_core import exceptions

    def invalid(reason: str):
        return exceptions.InvalidArgument(f"Batch: {reason}")

    config = type(batch).pb(batch).WhichOneof("batch_config")
    if config is None:
        raise invalid(
            "one of pyspark_batch, spark_batch, spark_r_batch, spark_sql_batch, "
            "pyspark_notebook_batch is required"
        )
    body = batch_dict.get(config, {})
    required = {
        "pyspark_batch": "main_python_file_uri",
        "spark_r_batch": "main_r_file_uri",
        "spark_sql_batch": "query_file_uri",
        "pyspark_notebook_batch": "notebook_file_uri",
    }.get(config)
    if required and not body.get(required):
        raise invalid(f"{config}.{required} is required")
    if config == "spark_batch" and not (body.get("main_jar_file_uri") or body.get("main_class")):
        raise invalid("spark_batch needs main_jar_file_uri or main_class")
    _check_labels(batch_dict.get("labels", {}), "Batch.labels", 32)
    execution = (batch_dict.get("environment_config") or {}).get("execution_config") or {}
    _check_email(execution.get("service_account", ""), "execution_config.service_account")


def _batch_operation(client, record: dict):
    """The create call's answer: a real ``google.api_core.operation.Operation`` whose refresh
    polls the batch (``operations.get_operation``) and whose cancel cancels it."""
    from google.api_core import operation
    from google.cloud.dataproc_v1.types import Batch, BatchOperationMetadata
    from google.longrunning import operations_pb2

    name, op_name = record["resource"]["name"], record["operation"]

    def to_pb(resource: dict):
        op = operations_pb2.Operation(name=op_name)
        meta = {"batch": name, "batch_uuid": resource["uuid"], "description": "Batch"}
        meta.update(create_time=resource["create_time"], operation_type="BATCH")
        op.metadata.Pack(BatchOperationMetadata.pb(_from_dict(BatchOperationMetadata, meta)))
        state = resource["state"]
        if state in terminal_states("batches"):
            op.done = True
            if state == "SUCCEEDED":
                op.response.Pack(Batch.pb(_from_dict(Batch, resource)))
            else:
                op.error.code = 9 if state == "FAILED" else 1
                op.error.message = resource.get("state_message", state)
        return op

    def refresh(retry=None):
        def handler(locked, note):
            _check_name(client, "batches", name)
            return to_pb(_poll(locked, "batches", name, note))

        method, request = "operations.get_operation", {"name": op_name}
        principal = _principal(method, request, client, "https://dataproc.googleapis.com/")
        return _run_sync(retry, lambda: _call(method, request, handler, principal))

    def cancel():
        method, request = "operations.cancel_operation", {"name": op_name}
        principal = _principal(method, request, client, "https://dataproc.googleapis.com/")
        _call(method, request, _canceller(client, "batches", name), principal)

    return operation.Operation(
        to_pb(record["resource"]),
        refresh,
        cancel,
        result_type=Batch,
        metadata_type=BatchOperationMetadata,
    )


def _batch_creator(client, request, principal_box: list):
    import re
    import uuid

    from google.api_core import exceptions
    from google.cloud.dataproc_v1.types import Batch

    def handler(locked: _Locked, note: dict):
        m = re.fullmatch(r"projects/([^/]+)/(?:regions|locations)/([^/]+)", request.parent)
        if not m:
            raise exceptions.InvalidArgument(f"invalid parent {request.parent!r}")
        project, region = m.groups()
        _check_endpoint(client, "dataproc", region)
        if request.request_id and not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", request.request_id):
            raise exceptions.InvalidArgument(f"invalid request_id {request.request_id!r}")
        store = locked.store("batches", write=True)
        if request.request_id:  # a repeated request id gets the first request's operation
            for record in store.values():
                if record.get("request_id") == request.request_id:
                    note["state"] = record["resource"]["state"]
                    return _batch_operation(client, record)
        batch_id = request.batch_id or uuid.uuid4().hex
        if not re.fullmatch(BATCH_ID, batch_id):
            raise exceptions.InvalidArgument(f"batch_id {batch_id!r} does not match ^{BATCH_ID}$")
        resource = _to_dict(request.batch)
        _check_batch(request.batch, resource)
        name = f"projects/{project}/locations/{region}/batches/{batch_id}"
        if name in store:
            raise exceptions.AlreadyExists(f'Batch "{name}" already exists')
        for output_only in ("runtime_info", "state_message", "state_history", "operation"):
            resource.pop(output_only, None)
        now, batch_uuid = _now(), str(uuid.uuid4())
        operation = f"projects/{project}/regions/{region}/operations/{batch_uuid}"
        resource.update(name=name, uuid=batch_uuid, create_time=now, state="PENDING")
        resource.update(state_time=now, creator=principal_box[0] or "", operation=operation)
        resource = _to_dict(_from_dict(Batch, resource))
        record = {"resource": resource, "polls": 0, "outputs": None, "operation": operation}
        record["request_id"] = request.request_id or None
        store[name] = record
        note["state"] = resource["state"]
        return _batch_operation(client, record)

    return handler


def _patch_batch_client(module) -> None:
    import re

    from google.api_core import exceptions
    from google.api_core.gapic_v1.method import DEFAULT
    from google.cloud.dataproc_v1.services.batch_controller import pagers
    from google.cloud.dataproc_v1.types import Batch, batches

    cls = module.BatchControllerClient
    prefix = "BatchControllerClient."

    def create_batch(
        self,
        request=None,
        *,
        parent=None,
        batch=None,
        batch_id=None,
        retry=DEFAULT,
        timeout=DEFAULT,
        metadata=(),
    ):
        method = prefix + "create_batch"
        flat = {"parent": parent, "batch": batch, "batch_id": batch_id}
        req = _coerce(method, batches.CreateBatchRequest, request, flat)
        principal_box = [None]
        try:
            principal_box[0] = _gapic_principal(self, "https://dataproc.googleapis.com/")
        except Exception as exc:
            _log_failed_request(method, _to_dict(req), exc)
            raise
        handler = _batch_creator(self, req, principal_box)
        return _run_sync(retry, lambda: _call(method, _to_dict(req), handler, principal_box[0]))

    def get_batch(self, request=None, *, name=None, retry=DEFAULT, timeout=DEFAULT, metadata=()):
        method = prefix + "get_batch"
        req = _coerce(method, batches.GetBatchRequest, request, {"name": name})
        return _sync_rpc(method, self, req, _getter(self, "batches", Batch, req.name), retry)

    def delete_batch(self, request=None, *, name=None, retry=DEFAULT, timeout=DEFAULT, metadata=()):
        method = prefix + "delete_batch"
        req = _coerce(method, batches.DeleteBatchRequest, request, {"name": name})
        _sync_rpc(method, self, req, _deleter(self, req.name), retry)

    def list_batches(
        self, request=None, *, parent=None, retry=DEFAULT, timeout=DEFAULT, metadata=()
    ):
        method = prefix + "list_batches"
        req = _coerce(method, batches.ListBatchesRequest, request, {"parent": parent})

        def handler(locked, note):
            if req.filter or req.order_by or req.page_token:
                raise FakeCloudError("list_batches: filter, order_by and page_token are not faked")
            m = re.fullmatch(r"projects/([^/]+)/(?:regions|locations)/([^/]+)", req.parent)
            if not m:
                raise exceptions.InvalidArgument(f"invalid parent {req.parent!r}")
            _check_endpoint(self, "dataproc", m.group(2))
            under = f"projects/{m.group(1)}/locations/{m.group(2)}/batches/"
            store = locked.store("batches")
            found = [
                _from_dict(Batch, r["resource"])
                for n, r in sorted(store.items())
                if n.startswith(under)
            ]
            note["found"] = len(found)
            return batches.ListBatchesResponse(batches=found)

        response = _sync_rpc(method, self, req, handler, retry)

        def next_page(*args, **kwargs):
            raise FakeCloudError("list_batches: paging is not faked")

        return pagers.ListBatchesPager(method=next_page, request=req, response=response)

    def cancel_operation(self, request=None, *, retry=DEFAULT, timeout=DEFAULT, metadata=()):
        """The operations mixin's cancel, as ``gcloud dataproc batches cancel`` calls it: the
        batch whose create operation it names is cancelled."""
        from google.longrunning import operations_pb2

        method = prefix + "cancel_operation"
        req = (
            operations_pb2.CancelOperationRequest(**request)
            if isinstance(request, dict)
            else request
        )
        url = "https://dataproc.googleapis.com/"
        principal = _principal(method, {"name": req.name}, self, url)

        def handler(locked, note):
            named = [n for n, r in locked.store("batches").items() if r["operation"] == req.name]
            if not named:
                raise exceptions.NotFound(f'operation "{req.name}" does not exist')
            _canceller(self, "batches", named[0])(locked, note)

        _run_sync(retry, lambda: _call(method, {"name": req.name}, handler, principal))

    cls.create_batch = create_batch
    cls.get_batch = get_batch
    cls.delete_batch = delete_batch
    cls.list_batches = list_batches
    cls.cancel_operation = cancel_operation


def _patch_batch_async_client(module) -> None:
    from google.api_core.gapic_v1.method import DEFAULT
    from google.cloud.dataproc_v1.types import Batch, batches

    cls = module.BatchControllerAsyncClient
    prefix = "BatchControllerAsyncClient."

    async def get_batch(
        self, request=None, *, name=None, retry=DEFAULT, timeout=DEFAULT, metadata=()
    ):
        method = prefix + "get_batch"
        req = _coerce(method, batches.GetBatchRequest, request, {"name": name})
        handler = _getter(self, "batches", Batch, req.name)
        return await _async_rpc(method, self, req, handler, retry)

    async def delete_batch(
        self, request=None, *, name=None, retry=DEFAULT, timeout=DEFAULT, metadata=()
    ):
        method = prefix + "delete_batch"
        req = _coerce(method, batches.DeleteBatchRequest, request, {"name": name})
        await _async_rpc(method, self, req, _deleter(self, req.name), retry)

    cls.get_batch = get_batch
    cls.delete_batch = delete_batch


# --- Resource Manager: projects ------------------------------------------------------------


def _patch_projects_client(module) -> None:
    """``ProjectsClient.get_project``: the aiplatform SDK asks it for the project number of
    the pipeline root's bucket owner (``gcs_utils._verify_bucket_ownership``)."""
    from google.api_core import exceptions
    from google.api_core.gapic_v1.method import DEFAULT
    from google.cloud.resourcemanager_v3.types import projects

    cls = module.ProjectsClient

    def get_project(self, request=None, *, name=None, retry=DEFAULT, timeout=DEFAULT, metadata=()):
        method = "ProjectsClient.get_project"
        req = _coerce(method, projects.GetProjectRequest, request, {"name": name})

        def handler(locked, note):
            wanted = req.name.removeprefix("projects/")
            for project_id, number in (locked.script().get("projects") or {}).items():
                if wanted in (project_id, str(number)):
                    return projects.Project(
                        name=f"projects/{number}",
                        project_id=project_id,
                        display_name=project_id,
                        state=projects.Project.State.ACTIVE,
                    )
            raise exceptions.PermissionDenied(
                f"The caller does not have permission (project {wanted!r} is not among "
                "script.json's projects)"
            )

        return _sync_rpc(method, self, req, handler, retry)

    cls.get_project = get_project


# --- BigQuery -------------------------------------------------------------------------------


def _sql_parameters(sql: str) -> tuple[set[str], int]:
    """The named (``@x``) parameters and the count of positional (``?``) ones ``sql`` uses,
    outside string literals, quoted identifiers and comments."""
    import re

    code = re.sub(
        r"'''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"|`[^`]*`"
        r"|--[^\n]*|#[^\n]*|/\*.*?\*/",
        " ",
        sql,
        flags=re.S,
    )
    named = set(re.findall(r"(?<![@\w])@([A-Za-z_]\w*)", code))
    return named, code.count("?")


def _check_query(sql: str, config: dict) -> None:
    """What BigQuery rejects before running a query (400 Bad Request)."""
    from google.api_core import exceptions

    query = config.get("query", {})
    parameters = query.get("queryParameters", [])
    named, positional = _sql_parameters(sql)
    if query.get("useLegacySql") and parameters:
        raise exceptions.BadRequest("Query parameters are not supported in legacy SQL")
    given = {p["name"] for p in parameters if p.get("name")}
    if given and query.get("parameterMode") == "POSITIONAL":
        raise exceptions.BadRequest("Named parameters in POSITIONAL parameter mode")
    missing = sorted(named - given)
    if missing:
        raise exceptions.BadRequest(f"Query parameter '{missing[0]}' not found: {sql}")
    unnamed = [p for p in parameters if not p.get("name")]
    if positional != len(unnamed) and (positional or unnamed):
        raise exceptions.BadRequest(
            f"the query has {positional} positional parameters, {len(unnamed)} were given"
        )


def _parameter_values(config: dict):
    def value(p):
        v = p.get("parameterValue", {})
        if "value" in v:
            return v["value"]
        if "arrayValues" in v:
            return [x.get("value") for x in v["arrayValues"]]
        return v

    parameters = config.get("query", {}).get("queryParameters", [])
    if parameters and not parameters[0].get("name"):
        return [value(p) for p in parameters]
    return {p["name"]: value(p) for p in parameters}


def _matches(answer: dict, sql: str, values) -> bool:
    if not all(s in sql for s in answer["contains"]):
        return False
    wanted = answer.get("params")
    if wanted is None:
        return True
    if not isinstance(values, dict):
        return False
    return all(
        str(values.get(k)) == (str(v).lower() if isinstance(v, bool) else str(v))
        for k, v in wanted.items()
    )


class _QueryRows:
    """``QueryJob.result()``: the answer's rows, as ``google.cloud.bigquery.table.Row``."""

    def __init__(self, rows: list):
        self._rows = rows
        self.total_rows = len(rows)

    def __iter__(self):
        return iter(self._rows)


class _QueryJob:
    """The ``QueryJob`` of an answered query: done, its rows waiting in ``result()``."""

    def __init__(self, job_id, sql, project, location, config, rows):
        self.job_id, self.query, self.project, self.location = job_id, sql, project, location
        self.configuration = config
        self.state, self.error_result, self.errors = "DONE", None, None
        self._rows = rows

    def done(self, *args, **kwargs) -> bool:
        return True

    def running(self) -> bool:
        return False

    def result(self, *args, **kwargs) -> _QueryRows:
        return _QueryRows(self._rows)

    def __repr__(self) -> str:
        return f"<fake QueryJob {self.job_id}: {self.query[:60]!r}>"


def _patch_bigquery_client(module) -> None:
    import uuid

    from google.cloud.bigquery.table import Row

    cls = module.Client

    def query(
        self,
        query,
        job_config=None,
        job_id=None,
        job_id_prefix=None,
        location=None,
        project=None,
        retry=None,
        timeout=None,
        job_retry=module.DEFAULT_JOB_RETRY,
        api_method="INSERT",
        **kwargs,
    ):
        method = "bigquery.Client.query"
        raw = {"query": query, "job_id": job_id, "project": project, "location": location}
        try:  # what the real method checks and merges before any call
            module._job_helpers.validate_job_retry(job_id, job_retry)
            if job_config is not None:
                module._verify_job_config_type(job_config, module.QueryJobConfig)
            config = module._job_helpers.job_config_with_defaults(
                job_config, self._default_query_job_config
            )
            if config.use_legacy_sql is None:  # QueryJob's own default
                config.use_legacy_sql = False
            api_repr = config.to_api_repr()
        except Exception as exc:
            _log_failed_request(method, raw, exc)
            raise
        project = project or self.project
        location = location or self.location
        job_id = job_id or f"{job_id_prefix or 'job_'}{uuid.uuid4().hex}"
        values = _parameter_values(api_repr)
        request = {"query": query, "job_config": api_repr, "parameters": values}
        request.update(project=project, location=location, job_id=job_id)
        try:
            principal = _authorize(self._credentials, "https://bigquery.googleapis.com/")
        except Exception as exc:
            _log_failed_request(method, request, exc)
            raise

        def handler(locked, note):
            _check_query(query, api_repr)
            answers = locked.answers()
            for answer in answers:
                if _matches(answer, query, values):
                    columns = answer.get("columns") or [
                        f"f{i}_" for i in range(len(answer["rows"][0]) if answer["rows"] else 0)
                    ]
                    index = {c: i for i, c in enumerate(columns)}
                    rows = [Row(tuple(r), index) for r in answer["rows"]]
                    note["rows"] = len(rows)
                    return _QueryJob(job_id, query, project, location, config, rows)
            registered = [a["contains"] for a in answers]
            raise FakeCloudError(
                f"no BigQuery answer for the query (parameters {values}):\n{query}\n"
                f"registered answers contain: {registered}"
            )

        return _call(method, request, handler, principal)

    cls.query = query


# --- Everything else: refused at once -------------------------------------------------------


def _is_local(target: str) -> bool:
    host = str(target).split("://")[-1].rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.")


def _refuse(kind: str, target: str, what: str):
    import contextlib

    message = f"the fake cloud does not fake {what} ({kind} to {target})"
    with contextlib.suppress(Exception):
        _log_failed_request(
            f"UNFAKED {kind}", {"target": target, "call": what}, FakeCloudError(message)
        )
    return FakeCloudError(message)


def _guard_grpc(module) -> None:
    import grpc

    real = module.create_channel

    class Refuse(
        grpc.UnaryUnaryClientInterceptor,
        grpc.UnaryStreamClientInterceptor,
        grpc.StreamUnaryClientInterceptor,
        grpc.StreamStreamClientInterceptor,
    ):
        def __init__(self, target):
            self.target = target

        def refuse(self, continuation, details, *args):
            raise _refuse("gRPC", self.target, details.method)

        intercept_unary_unary = intercept_unary_stream = refuse
        intercept_stream_unary = intercept_stream_stream = refuse

    def create_channel(target, *args, **kwargs):
        if _is_local(target):
            return real(target, *args, **kwargs)
        return grpc.intercept_channel(grpc.insecure_channel("127.0.0.1:9"), Refuse(target))

    module.create_channel = create_channel


def _guard_grpc_async(module) -> None:
    from grpc import aio

    real = module.create_channel

    class Refuse(aio.UnaryUnaryClientInterceptor, aio.UnaryStreamClientInterceptor):
        def __init__(self, target):
            self.target = target

        async def intercept_unary_unary(self, continuation, details, request):
            raise _refuse("gRPC", self.target, details.method)

        async def intercept_unary_stream(self, continuation, details, request):
            raise _refuse("gRPC", self.target, details.method)

    def create_channel(target, *args, **kwargs):
        if _is_local(target):
            return real(target, *args, **kwargs)
        return aio.insecure_channel("127.0.0.1:9", interceptors=[Refuse(target)])

    module.create_channel = create_channel


def _guard_http(module) -> None:
    from urllib.parse import urlsplit

    cls = module.AuthorizedSession
    real = cls.request

    def request(self, method, url, *args, **kwargs):
        host = urlsplit(url).hostname or ""
        if host == "googleapis.com" or host.endswith(".googleapis.com"):
            raise _refuse("HTTP", host, f"{method} {url}")
        return real(self, method, url, *args, **kwargs)

    cls.request = request


# --- The import hook ------------------------------------------------------------------------

PATCHES = {
    "google.cloud.aiplatform_v1.services.pipeline_service.client": _patch_pipeline_client,
    "google.cloud.aiplatform_v1.services.pipeline_service.async_client": (
        _patch_pipeline_async_client
    ),
    "google.cloud.dataproc_v1.services.batch_controller.client": _patch_batch_client,
    "google.cloud.dataproc_v1.services.batch_controller.async_client": _patch_batch_async_client,
    "google.cloud.resourcemanager_v3.services.projects.client": _patch_projects_client,
    "google.cloud.bigquery.client": _patch_bigquery_client,
    "google.api_core.grpc_helpers": _guard_grpc,
    "google.api_core.grpc_helpers_async": _guard_grpc_async,
    "google.auth.transport.requests": _guard_http,
}


class _PatchingLoader:
    """The module's own loader, then the patch, on the module just executed."""

    def __init__(self, loader, patch):
        self._loader, self._patch = loader, patch

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        self._patch(module)
        module.__fake_cloud_patched__ = True

    def __getattr__(self, name):  # get_source, get_resource_reader, ...
        return getattr(self._loader, name)


class _PatchingFinder:
    """Finds the modules of ``PATCHES`` as the other finders do, with a patching loader."""

    def find_spec(self, fullname, path=None, target=None):
        patch = PATCHES.get(fullname)
        if patch is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _PatchingLoader(spec.loader, patch)
        return spec

    def invalidate_caches(self):
        pass


def install() -> None:
    """Patch the clients from now on (and those already imported)."""
    if any(isinstance(f, _PatchingFinder) for f in sys.meta_path):
        return
    for name, patch in PATCHES.items():
        module = sys.modules.get(name)
        if module is not None and not getattr(module, "__fake_cloud_patched__", False):
            patch(module)
            module.__fake_cloud_patched__ = True
    sys.meta_path.insert(0, _PatchingFinder())


if os.environ.get(ENV):
    install()
