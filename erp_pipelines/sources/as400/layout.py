"""A file's columns as the IBM i catalog (QSYS2.SYSCOLUMNS2) describes them, shared by the table read and the
journal's record images."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from erp_pipelines.sources.as400 import sql

# CCSID 65535: character data FOR BIT DATA, delivered untranslated (binary).
FOR_BIT_DATA = 65535


@dataclass(frozen=True)
class SourceColumn:
    """One column of a file as QSYS2.SYSCOLUMNS2 describes it."""

    name: str  # the SQL name (a DDS ALIAS long name), else the system name
    system_name: str
    data_type: str
    length: int
    scale: int | None
    ccsid: int | None


@dataclass(frozen=True)
class FileLayout:
    """How the spec's source column names map to the file's SQL names, checked against the catalog."""

    table: sql.QualifiedTable
    columns: tuple[SourceColumn, ...]
    sql_names: dict[str, str]  # spec's name (system or SQL name) → SQL name

    def select_names(self, names: Sequence[str]) -> list[str]:
        return [self.sql_names[name] for name in names]
