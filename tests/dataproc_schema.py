"""Strict offline checks of Dataproc requests against the real ``dataproc_v1`` schema."""

from __future__ import annotations

from google.cloud.dataproc_v1 import Batch
from google.protobuf import json_format


def strict_batch(payload: dict) -> Batch:
    """``payload`` as a ``Batch``: an unknown field, a wrong type or an unknown enum name raises,
    and nothing is dropped on the way (the message turns back into the same dict)."""
    message = json_format.ParseDict(payload, Batch.pb()(), ignore_unknown_fields=False)
    again = json_format.MessageToDict(message, preserving_proto_field_name=True)
    assert again == payload, f"the Batch dropped or changed fields: {again} != {payload}"
    return Batch.wrap(message)
