"""The memory system's settings as its Dagster resource (MEMORY_SOURCE_ROWS, MEMORY_SOURCE_TOKEN)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import dagster as dg
from pydantic import Field

from erp_pipelines.core.spec import TableSpec
from erp_pipelines.sources.system import SourceResource
from erp_pipelines_tests.support.memory_source.adapter import MemorySource


class MemoryResource(SourceResource):
    rows: str = Field(default="", description="MEMORY_SOURCE_ROWS: id:text;id:text")
    token: str = Field(description="MEMORY_SOURCE_TOKEN; a secret", repr=False)

    def source(self) -> MemorySource:
        rows = [item.split(":", 1) for item in self.rows.split(";") if item]
        return MemorySource([(int(key), body) for key, body in rows], self.token)

    def probe(self, specs: list[TableSpec]) -> str:
        source = self.source()
        return f"in memory, {source.count_rows(specs[0])} rows; readable: {', '.join(s.entity for s in specs)}"


def memory_resource(env: Mapping[str, str] | None = None, *, secrets_from_env_var: bool = True) -> MemoryResource:
    env = os.environ if env is None else env
    token = dg.EnvVar("MEMORY_SOURCE_TOKEN") if secrets_from_env_var else env.get("MEMORY_SOURCE_TOKEN", "")
    return MemoryResource(rows=env.get("MEMORY_SOURCE_ROWS", ""), token=token)
