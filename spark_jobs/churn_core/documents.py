"""The one door to the project's JSON documents, on a local path or GCS: read whole, or replace
whole. On GCS the caller passes its storage client (Airflow: the connection's); without one,
the default credentials' client is used."""

from __future__ import annotations

import json
import os

from churn_core import layout


def bucket_of(uri: str, client=None):
    """The GCS bucket of a ``gs://`` URI through ``client`` (default credentials without one),
    and the object's name in it."""
    if client is None:
        from google.cloud import storage

        client = storage.Client()
    bucket, name = layout.gcs_object(uri)
    return client.bucket(bucket), name


def _blob(uri: str, client):
    bucket, name = bucket_of(uri, client)
    return bucket.blob(name)


def read(uri: str, client=None) -> dict | None:
    """A JSON document; None if it does not exist."""
    if uri.startswith("gs://"):
        from google.api_core.exceptions import NotFound

        try:
            return json.loads(_blob(uri, client).download_as_text())
        except NotFound:
            return None
    try:
        with open(uri.removeprefix("file://")) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def write(uri: str, doc: dict, client=None) -> None:
    """Replace a JSON document whole: a reader sees the old one or the new one, never a part."""
    text = json.dumps(doc, indent=2) + "\n"
    if uri.startswith("gs://"):
        _blob(uri, client).upload_from_string(text, content_type="application/json")
        return
    path = uri.removeprefix("file://")
    with open(f"{path}.tmp", "w") as f:
        f.write(text)
    os.replace(f"{path}.tmp", path)
