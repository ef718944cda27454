"""The Airflow side's GCS client: the ``google_cloud_default`` connection's, handed to
``churn_core.documents`` and ``churn_core.registry``."""

from __future__ import annotations


def client(uri: str):
    """The connection's storage client for a ``gs://`` URI; None for a local path."""
    if not uri.startswith("gs://"):
        return None
    from airflow.providers.google.cloud.hooks.gcs import GCSHook

    return GCSHook().get_conn()
