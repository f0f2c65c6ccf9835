"""API keys: created (shown once), listed without secrets, revoked — by admins."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update

from schema.models import ApiKey
from services.api.deps import AdminKey, SessionDep
from services.api.keys import generate_key, hash_key

router = APIRouter(prefix="/keys", tags=["keys"])

NAME_PATTERN = r"^[^\x00-\x1f\x7f]+$"  # printable: no control characters


class KeyCreate(BaseModel):
    """A key to create; it is returned once and stored only as a hash."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN)
    role: Literal["viewer", "operator", "admin"]
    expires_in_days: int | None = Field(default=None, ge=1, le=3650, description="none: never expires")


class KeyInfo(BaseModel):
    """A key without its secret."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    prefix: str
    role: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyInfo):
    """The new key: ``key`` is shown this once and cannot be read again."""

    key: str


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_key(body: KeyCreate, _: AdminKey, session: SessionDep) -> KeyCreated:
    """Create a key with a role; the response is the only place the key appears."""
    key, prefix = generate_key()
    expires = datetime.now(timezone.utc) + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    row = ApiKey(id=uuid.uuid4(), name=body.name, prefix=prefix, key_hash=hash_key(key), role=body.role,
                 expires_at=expires)
    session.add(row)
    await session.commit()
    await session.refresh(row)
    return KeyCreated(**KeyInfo.model_validate(row).model_dump(), key=key)


@router.get("")
async def list_keys(_: AdminKey, session: SessionDep) -> list[KeyInfo]:
    """Every key, newest first, with when it was last used (to the minute)."""
    rows = await session.scalars(select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.name))
    return [KeyInfo.model_validate(r) for r in rows]


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT, responses={404: {"description": "no such key"}})
async def revoke_key(
    key_id: Annotated[uuid.UUID, Path()], _: AdminKey, session: SessionDep, request: Request
) -> Response:
    """Revoke a key: it stops authenticating at once here (other replicas: within api_key_cache_s)."""
    result = await session.execute(
        update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=datetime.now(timezone.utc)).returning(ApiKey.id)
    )
    revoked = result.scalar_one_or_none()
    if revoked is None:
        exists = await session.scalar(select(ApiKey.id).where(ApiKey.id == key_id))
        if exists is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"API key {key_id} not found")
    await session.commit()
    request.app.state.principals.forget(key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
