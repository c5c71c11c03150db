"""The memory system as the registry sees it."""

from __future__ import annotations

from erp_pipelines.sources.system import JobDefault, SourceSystem
from erp_pipelines_tests.support.memory_source.resource import memory_resource
from erp_pipelines_tests.support.memory_source.tables import NOTE

SYSTEM = SourceSystem(
    name="memory",
    title="in-memory test system",
    kind="python",
    tables=(NOTE,),
    resource=memory_resource,
    secret_settings=("MEMORY_SOURCE_TOKEN",),
    jobs=(JobDefault(name="memory_daily_job", description="The memory system's notes.", cron="30 4 * * *"),),
)
