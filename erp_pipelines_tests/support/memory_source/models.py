"""The validation model of the memory system's one table."""

from __future__ import annotations

import pandera.pandas as pa_pandas

from erp_pipelines.core.fields import INT, TEXT, text


class NoteModel(pa_pandas.DataFrameModel):
    """A note: a positive id and a required text of at most 40 characters."""

    note_id: INT = pa_pandas.Field(gt=0, nullable=False, description="NOTE_ID")
    body: TEXT = text(required=True, max_length=40, description="BODY")

    class Config:
        strict = True
