"""The fake metadata server answers like a GCE one (ADC through it: test_fake_cloud.py)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.composer import metadata_server

EMAIL = "composer@p.iam.gserviceaccount.com"


def get(address: str, path: str, flavor: bool = True):
    request = urllib.request.Request(f"http://{address}{path}")
    if flavor:
        request.add_header("Metadata-Flavor", "Google")
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.headers, response.read().decode()


def test_answers_what_google_auth_asks():
    with metadata_server.serve("p", EMAIL) as address:
        headers, _ = get(address, "/")
        assert headers["Metadata-Flavor"] == "Google"
        assert get(address, "/computeMetadata/v1/project/project-id")[1] == "p"
        assert get(address, "/computeMetadata/v1/universe/universe-domain")[1] == "googleapis.com"
        path = "/computeMetadata/v1/instance/service-accounts/default/?recursive=true"
        headers, body = get(address, path)
        assert headers["Content-Type"] == "application/json"
        assert json.loads(body)["email"] == EMAIL
        path = "/computeMetadata/v1/instance/service-accounts/default/token?scopes=x"
        token = json.loads(get(address, path)[1])
        assert token["token_type"] == "Bearer"
        assert token["expires_in"] > 60
        with pytest.raises(urllib.error.HTTPError) as refused:
            get(address, "/computeMetadata/v1/project/project-id", flavor=False)
        assert refused.value.code == 403
    assert metadata_server.env(address)["GCE_METADATA_IP"] == address
