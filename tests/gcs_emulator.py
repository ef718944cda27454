"""A real GCS JSON API for the tests: ``gcp-storage-emulator``, served from a thread.

The emulator ignores ``ifGenerationMatch`` (its 2026.7.19 release; the canary test in
tests/plugins/test_gcs_emulator.py shows it). ``generation_preconditions`` stands in for
exactly that part of GCS: an upload whose ``ifGenerationMatch`` is not the object's current
generation (0: no object) gets the 412 GCS answers. Everything else is the emulator's own.
Its HTTP server handles one request at a time, so the check and the write are atomic.
"""

from __future__ import annotations

import contextlib
import socket
from http import HTTPStatus

from gcp_storage_emulator import server as emulator
from gcp_storage_emulator.exceptions import NotFound
from gcp_storage_emulator.handlers import objects

HOST = "127.0.0.1"


def _object_name(request) -> str | None:
    if "name" in request.query:
        return request.query["name"][0]
    data = request.data
    return data.get("meta", {}).get("name") if isinstance(data, dict) else None


def _insert_with_preconditions(request, response, storage):
    wanted = request.query.get("ifGenerationMatch")
    if wanted:
        try:
            obj = storage.get_file_obj(request.params["bucket_name"], _object_name(request))
            current = str(obj["generation"])
        except NotFound:
            current = "0"
        if current != wanted[0]:
            response.status = HTTPStatus.PRECONDITION_FAILED
            message = f"ifGenerationMatch {wanted[0]} but the generation is {current}"
            response.json({"error": {"code": 412, "message": message, "errors": []}})
            return None
    return _original_insert(request, response, storage)


_original_insert = objects.insert


def _swap(old, new) -> None:
    for _, handlers in emulator.HANDLERS:
        handlers.update({method: new for method, h in handlers.items() if h is old})
    objects.insert = new  # the router's fallback for uploads


@contextlib.contextmanager
def generation_preconditions():
    """Uploads honour ``ifGenerationMatch`` while inside."""
    _swap(_original_insert, _insert_with_preconditions)
    try:
        yield
    finally:
        _swap(_insert_with_preconditions, _original_insert)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serve():
    """The emulator's base URL (``http://host:port``) while it runs, in memory."""
    port = free_port()
    server = emulator.create_server(HOST, port, in_memory=True)
    server.start()
    try:
        yield f"http://{HOST}:{port}"
    finally:
        server.stop()
