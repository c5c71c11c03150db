"""4D-style REST errors: an HTTP status plus an ``__ERROR`` stack of ``dbmg`` codes."""

from __future__ import annotations

import json


class RestError(Exception):
    """An error the REST layer turns into ``{"__ERROR": [...]}`` with the given HTTP status."""

    def __init__(self, status: int, *stack: tuple[int, str], headers: dict[str, str] | None = None) -> None:
        super().__init__("; ".join(f"{code}: {message}" for code, message in stack))
        self.status = status
        self.stack = list(stack)
        self.headers = headers or {}

    def body(self) -> bytes:
        """Serialize the error stack exactly as 4D does (message, componentSignature, errCode)."""
        return json.dumps(
            {
                "__ERROR": [
                    {"message": message, "componentSignature": "dbmg", "errCode": code}
                    for code, message in self.stack
                ]
            }
        ).encode()


def dataclass_not_found(name: str) -> RestError:
    return RestError(404, (1800, f'The dataclass "{name}" cannot be found'))


def attribute_not_found(dataclass: str, name: str) -> RestError:
    return RestError(
        404,
        (1500, f'The "{name}" attribute cannot be found in The "{dataclass}" datastore class'),
        (1804, f'Cannot completely build a list of attributes with "{name}"'),
    )


def entity_not_found(dataclass: str, key: object) -> RestError:
    return RestError(404, (1543, f"Cannot load entity #{key} of dataclass {dataclass}"))


def malformed(message: str) -> RestError:
    return RestError(400, (1806, f"URL is malformed: {message}"))


def query_error(message: str, code: int = 1201) -> RestError:
    return RestError(500, (code, message))
