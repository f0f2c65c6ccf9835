"""API keys: ``iw_<prefix>_<secret>``, stored as the sha256 of the whole key beside its visible prefix."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from schema.migrate import async_url
from schema.models import ApiKey
from shared.alert_events import redact_url

ROLES = ("viewer", "operator", "admin")
KEY_PREFIX = "iw_"
PREFIX_LEN = 8
TOUCH_INTERVAL = timedelta(seconds=60)  # last_used_at is written at most this often
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()


@dataclass(frozen=True)
class Principal:
    """The key a request was authenticated with; never holds the key itself."""

    key_id: uuid.UUID
    name: str
    prefix: str
    role: str

    def allows(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)

    def webhook(self, url: str | None) -> str | None:
        """A webhook URL as this key may see it: whole to admins, else scheme, host and port (it may hold a token)."""
        return url if url is None or self.allows("admin") else redact_url(url)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> tuple[str, str]:
    """A new key and its visible prefix."""
    prefix = secrets.token_hex(PREFIX_LEN // 2)
    return f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}", prefix


def parse_prefix(key: str) -> str | None:
    """The prefix of a well-formed key, else None."""
    start = len(KEY_PREFIX)
    if not key.startswith(KEY_PREFIX) or len(key) < start + PREFIX_LEN + 2 or key[start + PREFIX_LEN] != "_":
        return None
    return key[start : start + PREFIX_LEN]


async def create_api_key(database_url: str, role: str, name: str) -> tuple[str, uuid.UUID]:
    """Store a new key with ``role``; returns the key (shown once, never stored) and its id."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    key, prefix = generate_key()
    key_id = uuid.uuid4()
    engine = create_async_engine(async_url(database_url), poolclass=NullPool)
    try:
        async with AsyncSession(engine) as session, session.begin():
            session.add(ApiKey(id=key_id, name=name, prefix=prefix, key_hash=hash_key(key), role=role))
    finally:
        await engine.dispose()
    return key, key_id


async def authenticate(session: AsyncSession, key: str) -> Principal | None:
    """The principal of a valid, unrevoked, unexpired key; None otherwise."""
    prefix = parse_prefix(key)
    row = None
    if prefix is not None:
        row = (await session.execute(select(ApiKey).where(ApiKey.prefix == prefix))).scalar_one_or_none()
    stored = row.key_hash if row is not None else _DUMMY_HASH
    if not hmac.compare_digest(hash_key(key), stored) or row is None:
        return None
    now = datetime.now(timezone.utc)
    if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        return None
    if row.role not in ROLES:
        return None
    principal = Principal(key_id=row.id, name=row.name, prefix=row.prefix, role=row.role)
    if row.last_used_at is None or now - row.last_used_at >= TOUCH_INTERVAL:
        await session.execute(update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now))
        await session.commit()
    return principal


async def key_is_valid(database_url: str, key: str) -> bool:
    """Whether ``key`` still authenticates (used by `infrawatch up` to reuse its admin key)."""
    engine = create_async_engine(async_url(database_url), poolclass=NullPool)
    try:
        async with AsyncSession(engine) as session:
            return await authenticate(session, key) is not None
    finally:
        await engine.dispose()


class PrincipalCache:
    """Recently authenticated keys, by the sha256 of the key, for ``ttl_s`` seconds (0: off).

    Saves a database round trip per request; a revocation through this instance applies at once,
    one made elsewhere (another replica, the database) within ``ttl_s``.
    """

    def __init__(self, ttl_s: float, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, key_hash: str, now: float) -> Principal | None:
        hit = self._entries.get(key_hash)
        if hit is None or hit[0] <= now:
            return None
        return hit[1]

    def put(self, key_hash: str, principal: Principal, now: float) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries = {h: e for h, e in self._entries.items() if e[0] > now}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[key_hash] = (now + self.ttl_s, principal)

    def forget(self, key_id: uuid.UUID) -> None:
        self._entries = {h: e for h, e in self._entries.items() if e[1].key_id != key_id}
