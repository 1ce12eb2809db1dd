"""Secrets the dev stack generates once per data dir: admin API key, internal token, key pepper."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path

from pvc.core.apikeys import generate_api_key
from pvc.devstack.errors import StackError

API_KEY_PREFIX = "pvc_"
BOOTSTRAP_KEY_ENV = "PVC_BOOTSTRAP_API_KEY"


def new_api_key() -> str:
    """A new API key in the format the gateway issues."""
    return generate_api_key()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def read_or_create(path: Path, make: Callable[[], str]) -> str:
    """The secret stored in `path`; made, and saved with mode 0600, the first time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        existing = path.read_text().strip()
        if existing:
            return existing
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)  # an empty file left by an interrupted run
        os.fchmod(fd, 0o600)
    value = make()
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value


def admin_key(*, data_dir: Path, env: Mapping[str, str]) -> tuple[str, Path | None]:
    """(key, file it is saved in): PVC_BOOTSTRAP_API_KEY if set (file None), else data_dir/admin.key."""
    given = env.get(BOOTSTRAP_KEY_ENV)
    if given:
        if not given.startswith(API_KEY_PREFIX):
            raise StackError(f"{BOOTSTRAP_KEY_ENV} must start with {API_KEY_PREFIX!r}")
        return given, None
    path = data_dir / "admin.key"
    return read_or_create(path, new_api_key), path
