"""Bearer API key authentication and scope checks, as FastAPI dependencies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pvc.core.errors import Forbidden, PvcError, Unauthenticated
from pvc.gateway.identity import SCOPES, Principal

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer pvc_...`")


def require(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """Dependency: the caller's key must be valid and hold `scope` (or `admin`)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope}")

    async def dependency(request: Request) -> Principal:
        # The identity middleware (guard.py) normally authenticated the key already.
        state = request.state
        principal: Principal | None = getattr(state, "principal", None)
        if principal is None:
            error: PvcError | None = getattr(state, "auth_error", None)
            if error is not None:
                raise error
            credentials: HTTPAuthorizationCredentials | None = await bearer(request)
            if credentials is None:
                raise Unauthenticated("missing bearer API key")
            principal = await request.app.state.keys.authenticate(credentials.credentials)
            state.principal = principal
        # The audit layer reads a resource's `before` through its GET route whatever the key's scopes.
        if scope == "read" and getattr(state, "audit_read", False):
            return principal
        if not principal.allows(scope):
            raise Forbidden(f"this key lacks the '{scope}' scope", details={"requiredScope": scope})
        return principal

    # Read by the OpenAPI customisation and by the scope-coverage test.
    dependency.required_scope = scope  # type: ignore[attr-defined]
    return dependency
