"""The emulator's settings, shared by the REST application and the HTTP server."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EmulatorConfig:
    """How the emulated server is set up; the defaults are 4D's documented defaults."""

    host: str = "127.0.0.1"
    port: int = 8080
    licenses: int = 3
    app_name: str = "ERP"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    # DOC https://developer.4d.com/docs/WebServer/sessions "Session lifetime": inactive sessions close after
    # 60 minutes by default (and the timeout "cannot be less than 60 minutes"); tests shorten it or move the clock.
    session_timeout: float = 3600.0
    entity_set_timeout: float = 7200.0
    log_requests: bool = False
    # DOC https://developer.4d.com/docs/20-R5/REST/authUsers "User login modes": "forceLogin" in roles.json.
    force_login: bool = False
    # Pre-v18 servers documented $directory/logout (docs/REST/$directory_logout.md) and closed the session;
    # v18-v21 document only login, and sessions close at their timeout or when the server stops.
    logout_releases: bool = False
    # DOC docs/REST/$attributes.md documents $attributes for related attributes; storage attributes are picked
    # with the path form /rest/Class/a,b (manData.md "Selecting Attributes to get"). False refuses the other form.
    plain_attributes_param: bool = True
    # An administrator may give the session cookie a domain (WEB SET OPTION / web settings); one that does not
    # match the name the client uses makes the client drop it, and every request opens another session.
    cookie_domain: str | None = None
    # Dataclasses with "Expose as REST resource" unchecked (DOC https://developer.4d.com/docs/REST/configuration):
    # absent from $catalog, 404 to every request.
    unexposed: tuple[str, ...] = ()

    @property
    def auth_required(self) -> bool:
        return bool(self.username)
