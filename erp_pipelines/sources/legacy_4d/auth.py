"""What 4D's two login modes need from this side: the credentials as header values, the ``authentify()`` body,
and what a refusal after a login means in each mode.

``directory`` (the default mode): ``POST $directory/login`` with ``username-4D``/``password-4D`` headers (DOC
https://developer.4d.com/docs/REST/$directory); ``authentify`` (force login): ``POST $catalog/authentify`` with a
body the application defines (DOC https://developer.4d.com/docs/20-R5/REST/authUsers).
"""

from __future__ import annotations

import json
import re

from erp_pipelines.core.source import SettingError
from erp_pipelines.sources.legacy_4d.errors import Legacy4DAuthError

AUTH_MODES = ("directory", "authentify")
# DOC https://developer.4d.com/docs/20-R5/REST/authUsers "Function authentify", example body
# [{"name":"Henry", "password":"123"}]: the parameters are whatever the application's function takes.
DEFAULT_AUTHENTIFY_BODY = '[{"name": "{username}", "password": "{password}"}]'
# Credentials travel as HTTP header values: Latin-1, no control characters, no surrounding spaces.
_HEADER_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


def header_safe(value: str) -> bool:
    """Whether a user name or password can travel as an HTTP header value (``username-4D``/``password-4D``)."""
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return not _HEADER_UNSAFE.search(value) and value == value.strip()


def authentify_body(template: str, username: str, password: str) -> str:
    """The ``authentify()`` parameters: the template's JSON with ``{username}``/``{password}`` put in its text
    values (as JSON values, never pasted into the text, so any character of a password stays data)."""
    try:
        parsed = json.loads(template)
    except ValueError as exc:
        raise SettingError(f"LEGACY_API_AUTH_BODY is not JSON: {exc}") from None
    if not isinstance(parsed, list):
        raise SettingError("LEGACY_API_AUTH_BODY must be a JSON array: the parameters of authentify()")

    def fill(value: object) -> object:
        if isinstance(value, str):
            return value.replace("{username}", username).replace("{password}", password)
        if isinstance(value, list):
            return [fill(item) for item in value]
        if isinstance(value, dict):
            return {key: fill(item) for key, item in value.items()}
        return value

    return json.dumps(fill(parsed))


def not_privileged_error(auth_mode: str, username: str | None, where: str, returned: str) -> Legacy4DAuthError:
    """A 401 right after a successful authentication: say what it means for the configured mode (``returned``:
    what authentify() answered, already redacted)."""
    if auth_mode == "directory":
        return Legacy4DAuthError(
            f"4D accepted the directory login of {username!r} but refused {where}: the server is most "
            "likely in force-login mode (the default of projects created with 4D 20 R6+), where only the "
            "application's authentify() grants privileges; set LEGACY_API_AUTH=authentify (and "
            "LEGACY_API_AUTH_BODY to its parameters)", status=401)
    return Legacy4DAuthError(
        f"4D's authentify() did not grant privileges to {username!r}: {where}; it returned {returned}. "
        "Check LEGACY_API_USERNAME / LEGACY_API_PASSWORD and that LEGACY_API_AUTH_BODY matches the "
        "parameters the application's authentify() takes", status=401)
