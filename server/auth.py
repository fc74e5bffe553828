"""API keys: kept only as SHA-256 hashes, each bound to the collections it may read or write.

Keys file (JSON)::

    {"keys": [{"name": "alice", "sha256": "<hex of sha256(key)>",
               "read": ["default"], "write": ["default"]}]}

``"*"`` in ``read``/``write`` means every collection. ``COLRETRIEVE_API_KEY`` adds one
all-access key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path

from colretrieve.errors import InvalidInputError, UnauthorizedError
from colretrieve.settings import Settings

ALL = "*"


@dataclass(frozen=True)
class Principal:
    name: str
    read: frozenset[str]
    write: frozenset[str]

    def can_read(self, collection: str) -> bool:
        return ALL in self.read or collection in self.read or self.can_write(collection)

    def can_write(self, collection: str) -> bool:
        return ALL in self.write or collection in self.write


ANONYMOUS = Principal("no-auth", frozenset({ALL}), frozenset({ALL}))


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyRing:
    def __init__(self, keys: dict[str, Principal], open_access: bool = False) -> None:
        self._keys = keys
        self.open_access = open_access

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        if settings.no_auth:
            return cls({}, open_access=True)
        keys: dict[str, Principal] = {}
        if settings.api_key is not None:
            keys[key_hash(settings.api_key.get_secret_value())] = Principal(
                "api-key", frozenset({ALL}), frozenset({ALL})
            )
        if settings.keys_file is not None:
            keys.update(load_keys_file(settings.keys_file))
        if not keys:
            raise InvalidInputError(
                "no API keys: set COLRETRIEVE_API_KEY, pass --keys FILE, or (local development "
                "only) --no-auth"
            )
        return cls(keys)

    def authenticate(self, authorization: str | None) -> Principal:
        if self.open_access:
            return ANONYMOUS
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UnauthorizedError()
        digest = key_hash(token.strip())
        for known, principal in self._keys.items():
            if hmac.compare_digest(known, digest):
                return principal
        raise UnauthorizedError()


def load_keys_file(path: Path) -> dict[str, Principal]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        entries = data["keys"]
        keys = {}
        for entry in entries:
            digest = str(entry["sha256"]).lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(f"{entry.get('name')!r}: sha256 must be 64 hex digits")
            keys[digest] = Principal(
                str(entry.get("name", digest[:8])),
                frozenset(entry.get("read", [])),
                frozenset(entry.get("write", [])),
            )
        return keys
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InvalidInputError(f"cannot read keys file {path}: {error}") from error
