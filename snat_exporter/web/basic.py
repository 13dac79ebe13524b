"""Basic auth against the bcrypt hashes of ``basic_auth_users``.

bcrypt is slow on purpose, so a verified (user, password) pair is remembered by a keyed digest, and the check runs
off the event loop: a scrape never waits behind a hash. An unknown user is compared against a dummy hash of the
same cost, so that the answer takes as long as for a known user with a wrong password: response times must not
tell which usernames exist.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping

import bcrypt

from snat_exporter.web.verdict import Verdict

CHALLENGE = {"WWW-Authenticate": 'Basic realm="snat-exporter"'}


def _cost(hashed: bytes) -> int:
    return int(hashed[4:6])  # validated at load: $2b$NN$...


class BasicAuth:
    challenge = CHALLENGE

    def __init__(self, users: Mapping[str, bytes]):
        self.users = dict(users)
        self._verified: set[bytes] = set()
        self._key = hashlib.sha256(b"".join(sorted(self.users.values()))).digest()
        cost = max((_cost(h) for h in self.users.values()), default=10)
        self._dummy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=cost))

    def _digest(self, user: str, password: str) -> bytes:
        return hmac.new(self._key, f"{user}\0{password}".encode(), hashlib.sha256).digest()

    async def check(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, sep, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if not sep:
            return False
        hashed = self.users.get(user)
        digest = self._digest(user, password)
        if hashed is not None and digest in self._verified:
            return True
        ok = await asyncio.to_thread(bcrypt.checkpw, password.encode(), hashed if hashed is not None else self._dummy)
        if ok and hashed is not None:
            self._verified.add(digest)
            return True
        return False

    async def verdict(self, path: str, headers: Mapping[str, str]) -> Verdict:
        if await self.check(headers.get("Authorization")):
            return Verdict.ALLOWED
        return Verdict.UNAUTHENTICATED
