"""A fake GCE metadata server: what ``google.auth.default()`` asks on a Composer worker.

Served by ``http.server`` from a thread on 127.0.0.1. A process whose environment has
``env(address)`` (and neither ``GOOGLE_APPLICATION_CREDENTIALS`` nor a gcloud ADC file) gets
``google.auth.compute_engine.Credentials`` and the project from ``google.auth.default()``;
their ``refresh()`` fetches a token from here. The paths, the ``Metadata-Flavor: Google``
header and the JSON are those of google-auth's ``compute_engine/_metadata.py``:

- ``GET /`` (the ping of ``GCE_METADATA_IP``): 200 with the ``Metadata-Flavor`` header;
- ``GET /computeMetadata/v1/project/project-id``: the project, as text (and
  ``numeric-project-id``);
- ``GET /computeMetadata/v1/universe/universe-domain``: ``googleapis.com``;
- ``GET /computeMetadata/v1/instance/service-accounts/default/?recursive=true`` (also by
  email): ``{"email", "scopes", "aliases"}``;
- ``GET /computeMetadata/v1/instance/service-accounts/default/token``: an access token.

A request without ``Metadata-Flavor: Google`` gets the 403 the real server answers.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

HOST = "127.0.0.1"
ROOT = "/computeMetadata/v1/"
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
TOKEN_LIFETIME_S = 3599


def env(address: str) -> dict[str, str]:
    """The variables that point google-auth at the server at ``address`` ("host:port").

    The caller must also leave out ``GOOGLE_APPLICATION_CREDENTIALS``, and should point
    ``CLOUDSDK_CONFIG`` at an empty folder so that a gcloud ADC file cannot win over GCE.
    """
    return {"GCE_METADATA_HOST": address, "GCE_METADATA_IP": address, "NO_GCE_CHECK": "False"}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format, *args):  # quiet: the test output is the place for failures
        pass

    def _send(self, status: int, body: str, content_type: str = "application/text") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Metadata-Flavor", "Google")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        self.server.record(url.path, query)
        if self.headers.get("Metadata-Flavor") != "Google":
            self._send(HTTPStatus.FORBIDDEN, "Missing required header: Metadata-Flavor")
            return
        if url.path == "/":  # the ping
            self._send(HTTPStatus.OK, "computeMetadata/\n")
            return
        if not url.path.startswith(ROOT):
            self._send(HTTPStatus.NOT_FOUND, "not found")
            return
        path = url.path[len(ROOT) :]
        if path == "project/project-id":
            self._send(HTTPStatus.OK, self.server.project)
        elif path == "project/numeric-project-id":
            self._send(HTTPStatus.OK, self.server.project_number)
        elif path == "universe/universe-domain":
            self._send(HTTPStatus.OK, "googleapis.com")
        elif path.startswith("instance/service-accounts/"):
            self._service_account(path.removeprefix("instance/service-accounts/"), query)
        else:
            self._send(HTTPStatus.NOT_FOUND, "not found")

    do_POST = do_GET  # a bound-token request is a POST; it gets the same answers

    def _service_account(self, rest: str, query: dict[str, list[str]]) -> None:
        account, _, leaf = rest.partition("/")
        if account not in ("default", self.server.email):
            self._send(HTTPStatus.NOT_FOUND, f"no service account {account}")
            return
        if leaf in ("", "/") and query.get("recursive") == ["true"]:
            info = {"aliases": ["default"], "email": self.server.email, "scopes": SCOPES}
            self._send(HTTPStatus.OK, json.dumps(info), "application/json")
        elif leaf == "email":
            self._send(HTTPStatus.OK, self.server.email)
        elif leaf == "token":
            token = {
                "access_token": self.server.new_token(),
                "expires_in": TOKEN_LIFETIME_S,
                "token_type": "Bearer",
            }
            self._send(HTTPStatus.OK, json.dumps(token), "application/json")
        else:
            self._send(HTTPStatus.NOT_FOUND, "not found")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, project: str, email: str, project_number: str):
        super().__init__((HOST, 0), _Handler)
        self.project, self.email, self.project_number = project, email, project_number
        self.requests: list[tuple[str, dict]] = []
        self.tokens: list[str] = []
        self._lock = threading.Lock()

    def record(self, path: str, query: dict) -> None:
        with self._lock:
            self.requests.append((path, query))

    def new_token(self) -> str:
        token = "ya29.fake-" + secrets.token_urlsafe(16)
        with self._lock:
            self.tokens.append(token)
        return token


@contextlib.contextmanager
def serve(project: str, email: str, *, project_number: str = "1234") -> Iterator[str]:
    """Serves the metadata of a VM of ``project`` running as ``email``; yields "host:port"."""
    server = _Server(project, email, project_number)
    thread = threading.Thread(target=server.serve_forever, name="fake-metadata", daemon=True)
    thread.start()
    try:
        yield f"{HOST}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
