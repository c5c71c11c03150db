"""The operator CLI (`erp-sync` / `python -m erp_pipelines.commands.cli`)."""

from __future__ import annotations

import os
import sys

import click
from alembic import command

from erp_pipelines.migrations import alembic_config


@click.group()
def main() -> None:
    """Sync AS400 and 4D legacy tables into the application database."""


@main.command()
def migrate() -> None:
    """Create or upgrade the application tables (Alembic, to the newest revision)."""
    url = os.environ.get("APP_DATABASE_URL", "")
    if not url:
        raise click.ClickException("APP_DATABASE_URL is not set")
    command.upgrade(alembic_config(url), "head")
    click.echo("application database is at the newest revision")


if __name__ == "__main__":
    sys.exit(main())
