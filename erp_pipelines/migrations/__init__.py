"""Alembic migrations of the application database."""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from alembic.config import Config

HERE = Path(__file__).resolve().parent


def project_tables_only(names: Collection[str]) -> Callable[[str | None, str, Any], bool]:
    """An Alembic `include_name` hook comparing only the project's tables: the application's own (Django's,
    in `public`) are visible on the same search_path and are never the project's to create or drop."""

    def include(name: str | None, type_: str, parent_names: Any) -> bool:
        return type_ != "table" or name in names

    return include


def alembic_config(url: str) -> Config:
    config = Config(str(HERE / "alembic.ini"))
    config.set_main_option("script_location", str(HERE))
    config.attributes["url"] = url
    return config
