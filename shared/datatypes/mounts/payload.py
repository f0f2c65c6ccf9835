"""The mounts payload: every mount of the login's mount namespace, as /proc/self/mountinfo lists it."""

from __future__ import annotations

from typing import Annotated

import msgspec

Path = Annotated[str, msgspec.Meta(max_length=4096)]


class Mount(msgspec.Struct, kw_only=True):
    mount_id: int
    parent_id: int
    device: str  # major:minor
    root: Path  # the directory of the filesystem mounted here ("/" unless a bind mount or a subvolume)
    mount_point: Path
    fs_type: str
    source: str  # "" when the kernel reports none
    read_only: bool
    options: list[str] = []  # per-mount options (rw, nosuid, relatime...)
    super_options: list[str] = []  # per-filesystem options
    propagation: list[str] = []  # optional fields: shared:N, master:N, propagate_from:N, unbindable


class Mounts(msgspec.Struct, kw_only=True):
    mounts: list[Mount] = []
    read_only: int = 0  # how many are mounted read-only
