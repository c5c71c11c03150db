"""An unreachable 4D server is named as such, after the configured retries, without the password."""

from __future__ import annotations

import socket

import pytest

from erp_pipelines.sources.legacy_4d.client import Legacy4DClient
from erp_pipelines.sources.legacy_4d.errors import Legacy4DError
from erp_pipelines_tests.support.legacy_4d import PASSWORD, USERNAME


def test_unreachable_server_is_a_clear_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = Legacy4DClient("127.0.0.1", port, USERNAME, PASSWORD, max_retries=1, backoff_seconds=0.01)
    with pytest.raises(Legacy4DError) as caught:
        client.connect()
    assert caught.value.status is None and "unreachable" in str(caught.value) and "2 attempt(s)" in str(caught.value)
    assert PASSWORD not in str(caught.value)
