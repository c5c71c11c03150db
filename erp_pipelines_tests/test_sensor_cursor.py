"""Which entities a change sensor's cursor says changed: new or different stamps, never the first sight."""

from __future__ import annotations

import pytest

from erp_pipelines.sensors import changed_entities


@pytest.mark.parametrize(
    ("previous", "current", "changed"),
    [({}, {"a": "1"}, []), ({"a": "1"}, {"a": "1"}, []), ({"a": "1", "b": "2"}, {"a": "1", "b": "3"}, ["b"]),
     ({"a": "1"}, {"a": "1", "b": "1"}, ["b"])],
)
def test_changed_entities(previous: dict, current: dict, changed: list) -> None:
    assert changed_entities(previous, current) == changed
