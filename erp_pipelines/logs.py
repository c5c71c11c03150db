"""Rotating sync logs, one per registered source system: `logs/<system>_sync.log`.

One line per table per run and every error, alongside the audit tables and Dagster's event log. The
engine never formats secrets into messages; a redacting filter removes every system's secret settings
(`SourceSystem.secret_settings`) and the database passwords as a second line of defence.
"""

from __future__ import annotations

import logging
import os
from logging.handlers import RotatingFileHandler
from pathlib import Path

from erp_pipelines.sources.registry import SYSTEMS

SECRET_VARIABLES = (*(name for system in SYSTEMS for name in system.secret_settings), "DAGSTER_PG_PASSWORD")
FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class RedactSecrets(logging.Filter):
    """Replaces the values of the secret environment variables (and the app URL's password) with ***."""

    def __init__(self) -> None:
        super().__init__()
        secrets = [os.environ.get(name, "") for name in SECRET_VARIABLES]
        url = os.environ.get("APP_DATABASE_URL", "")
        if "@" in url and ":" in url.split("@")[0]:
            secrets.append(url.split("@")[0].rsplit(":", 1)[1])
        self.secrets = [secret for secret in secrets if len(secret) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        for secret in self.secrets:
            message = message.replace(secret, "***")
        record.msg, record.args = message, None
        return True


def sync_logger(source_system: str) -> logging.Logger:
    return logging.getLogger(f"erp_pipelines.sync.{source_system}")


def configure_sync_logs(directory: str | None = None) -> None:
    """Attaches one rotating file per source system (idempotent: a second call adds nothing)."""
    folder = Path(directory or os.environ.get("ERP_LOG_DIR") or "logs")
    folder.mkdir(parents=True, exist_ok=True)
    for system in SYSTEMS:
        logger = sync_logger(system.name)
        logger.setLevel(logging.INFO)
        path = (folder / f"{system.name}_sync.log").resolve()
        if any(getattr(handler, "baseFilename", None) == str(path) for handler in logger.handlers):
            continue
        handler = RotatingFileHandler(path, maxBytes=10 * 1024 * 1024, backupCount=5, encoding="utf-8")
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(RedactSecrets())
        logger.addHandler(handler)
