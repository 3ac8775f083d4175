"""Bearer tokens: stored as sha256 digests, compared in constant time. Pure."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

__all__ = ["PUBLIC_TENANT", "TokenTable", "hash_token"]

PUBLIC_TENANT = "public"
"""The tenant of every caller when no tokens are configured."""


def hash_token(token: str) -> str:
    """The sha256 hex digest under which ``token`` is configured."""
    return hashlib.sha256(token.encode()).hexdigest()


class TokenTable:
    """Who a bearer token belongs to."""

    def __init__(self, digests: Mapping[str, str]) -> None:
        self._entries = [(bytes.fromhex(d), tenant) for d, tenant in digests.items()]

    @property
    def enabled(self) -> bool:
        return bool(self._entries)

    def tenant_for(self, token: str) -> str | None:
        """The token's tenant, or None when it is unknown.

        Compares against every entry with ``hmac.compare_digest`` (no early exit), so
        the time taken does not tell how close a guess was.
        """
        digest = hashlib.sha256(token.encode()).digest()
        found: str | None = None
        for stored, tenant in self._entries:
            if hmac.compare_digest(stored, digest):
                found = tenant
        return found
