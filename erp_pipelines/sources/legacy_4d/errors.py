"""What a failed 4D REST call raises: one base class, and a subclass for each failure a caller acts on."""

from __future__ import annotations

from collections.abc import Sequence

from erp_pipelines.core.source import SourceAuthenticationError, SyncSourceError


class Legacy4DError(SyncSourceError):
    """A failed 4D REST call: HTTP ``status`` (None if the server was unreachable), 4D ``err_codes``. A source
    error like any other: its message is what the operator is shown (it never holds a credential)."""

    def __init__(
        self, message: str, *, status: int | None = None, err_codes: Sequence[int] = (),
        messages: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.err_codes = list(err_codes)
        self.messages = list(messages)


class Legacy4DLicenseError(Legacy4DError):
    """HTTP 402 / errCode 1823: every 4D client license is taken; retry the run later."""


class Legacy4DAuthError(Legacy4DError, SourceAuthenticationError):
    """HTTP 401 / errCode 1822: login refused or session not authenticated."""


class Legacy4DNotFoundError(Legacy4DError):
    """HTTP 404: unknown dataclass, entity, attribute or expired entity set."""
