"""The memory system's one table."""

from __future__ import annotations

import sqlalchemy as sa

from erp_pipelines.core.decoders import Integer, Text
from erp_pipelines.core.spec import Column, TableSpec
from erp_pipelines_tests.support.memory_source.models import NoteModel

NOTE = TableSpec(
    entity="memo_note",
    source_system="memory",
    source_table="NOTES",
    target_table="memo_note",
    business_key=("note_id",),
    columns=(
        Column.of("note_id", "NOTE_ID", Integer(), sa.BigInteger(), nullable=False),
        Column.of("body", "BODY", Text(), sa.Text(), nullable=False),
    ),
    model=NoteModel,
    cadence="daily",
    description="Notes of the in-memory test system.",
)
