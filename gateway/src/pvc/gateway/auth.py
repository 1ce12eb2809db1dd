"""Bearer API key authentication and scope checks, as FastAPI dependencies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pvc.core.errors import Forbidden, Unauthenticated
from pvc.gateway.identity import SCOPES, Principal

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer pvc_...`")


def require(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """Dependency: the caller's key must be valid and hold `scope` (or `admin`)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope}")

    async def dependency(request: Request) -> Principal:
        credentials: HTTPAuthorizationCredentials | None = await bearer(request)
        if credentials is None:
            raise Unauthenticated("missing bearer API key")
        principal: Principal = await request.app.state.keys.authenticate(credentials.credentials)
        if not principal.allows(scope):
            raise Forbidden(f"this key lacks the '{scope}' scope", details={"requiredScope": scope})
        request.state.principal = principal
        return principal

    # Read by the OpenAPI customisation and by the scope-coverage test.
    dependency.required_scope = scope  # type: ignore[attr-defined]
    return dependency
