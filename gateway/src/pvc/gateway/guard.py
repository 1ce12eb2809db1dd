"""Pure ASGI middleware in front of every route: who is calling (key, client IP), rate limits, audit.

It authenticates the bearer key once (the KeyStore cache makes that a dict lookup), so the per-key
bucket can be charged before any handler runs; `auth.require` then only checks the scope. It records
an audit row for every non-GET `/api/v1` request and every 401/403 once the handler answered, and holds
that answer back until the row is committed (see `AuditWriter`), so a crash cannot lose the row of a
change the client was told about.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from typing import Any

import orjson
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pvc.core.context import request_id_var
from pvc.core.errors import PvcError
from pvc.core.ssrf import IPNetwork
from pvc.gateway.audit import API_PREFIX, MUTATING, AuditRule, AuditWriter, build_rules, resource_id
from pvc.gateway.identity import KeyStore, Principal
from pvc.gateway.ratelimit import Decision, RateLimiter

log = logging.getLogger("pvc.gateway.guard")

EXEMPT = frozenset({"/health", "/ready", "/metrics"})


def client_ip(scope: Scope, trusted: Iterable[IPNetwork]) -> str | None:
    """The TCP peer, or, when the peer is a trusted proxy, the address it appended to X-Forwarded-For.

    Envoy (use_remote_address) appends the address it saw, so the rightmost entry is the one to
    believe; anything to its left was written by the client and is ignored.
    """
    client = scope.get("client")
    peer = str(client[0]) if client else None
    if peer is None:
        return None
    try:
        peer_ip = ipaddress.ip_address(peer)
    except ValueError:
        return peer
    if not any(peer_ip in network for network in trusted):
        return peer
    for name, value in scope["headers"]:
        if name == b"x-forwarded-for":
            candidate = value.decode("latin-1").rsplit(",", 1)[-1].strip()
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                return peer
    return peer


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


class IdentityMiddleware:
    """`routes`: every route of the public API (the app's API_ROUTERS), for the audit rules."""

    def __init__(self, app: ASGIApp, *, routes: list[Any]) -> None:
        self.app = app
        self._routes = [r for r in routes if isinstance(r, APIRoute)]
        self._rules = build_rules(self._routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        keys: KeyStore = state.keys
        limiter: RateLimiter = state.rate_limiter
        request_state: dict[str, Any] = scope.setdefault("state", {})
        ip = client_ip(scope, state.trusted_proxies)
        request_state["client_ip"] = ip

        principal: Principal | None = None
        token = _bearer(scope)
        if token is not None:
            try:
                principal = await keys.authenticate(token)
                request_state["principal"] = principal
            except PvcError as error:
                request_state["auth_error"] = error
        if principal is not None:
            rate, burst = limiter.limits_for(principal.rate_limit_per_second)
            decision = limiter.take(f"key:{principal.key_id}", rate=rate, burst=burst)
        else:
            decision = limiter.take(f"ip:{ip}", rate=limiter.per_second, burst=limiter.burst)
        if decision is not None and not decision.allowed:
            await _rate_limited(send, decision)
            return

        if b"%00" in scope.get("query_string", b""):
            # PostgreSQL text cannot hold NUL; refuse it here once instead of in every query parameter.
            await _bad_query(send)
            return

        method = scope["method"]
        path = scope["path"]
        is_api = path.startswith(API_PREFIX)
        rule: AuditRule | None = None
        before: Any = None
        if is_api and method in MUTATING:
            rule = self._match(scope)
            if rule is not None and rule.audited:
                scope_ok = principal is not None and rule.scope is not None and principal.allows(rule.scope)
                if rule.fetch_before and scope_ok:
                    before = await self._read(scope, principal)
            elif rule is not None:
                rule = None

        status = 500
        capture = rule is not None
        chunks: list[bytes] = []
        # An audited answer is held here until its audit row is committed.
        held: list[Message] | None = [] if capture else None

        async def send_wrapper(message: Message) -> None:
            nonlocal status, capture, held
            if message["type"] == "http.response.start":
                status = message["status"]
                if is_api and status in (401, 403) and not capture:
                    capture, held = True, []
                if decision is not None:
                    message["headers"] = [*message.get("headers", []), *_limit_headers(decision)]
            elif message["type"] == "http.response.body" and capture:
                chunks.append(message.get("body", b""))
            if held is not None:
                held.append(message)
            else:
                await send(message)

        after_read: Any = None
        try:
            await self.app(scope, receive, send_wrapper)
            body = b"".join(chunks)
            if rule is not None and rule.fetch_before and 200 <= status < 300 and not body.strip():
                # A 204 says nothing about the result: read it back (None when it is gone).
                after_read = await self._read(scope, principal)
        finally:
            if is_api and (rule is not None or status in (401, 403)):
                try:
                    await self._audit(
                        scope, request_state, rule, status, before, b"".join(chunks), after_read
                    )
                except Exception:  # the answer (of a change already made) must still go out
                    log.exception("could not audit %s %s", scope["method"], scope["path"])
            for message in held or ():
                await send(message)

    # -- helpers ------------------------------------------------------------------------------

    def _match(self, scope: Scope) -> AuditRule | None:
        for route in self._routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return self._rules.get((scope["method"], route.path_format))
        return None

    async def _read(self, scope: Scope, principal: Principal | None) -> Any:
        """`before`: the resource as its GET route shows it, read in-process (no rate limit, no audit)."""
        sub_scope = {
            **scope,
            "method": "GET",
            "query_string": b"",
            "state": {"principal": principal, "audit_read": True, "client_ip": None},
        }
        sub_scope.pop("route", None)
        sub_scope.pop("path_params", None)
        status = 0
        chunks: list[bytes] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self.app(sub_scope, receive, send)
        except Exception:  # `before` is best effort; the change itself must still go through
            log.warning("could not read the resource before %s %s", scope["method"], scope["path"])
            return None
        if status != 200:
            return None
        try:
            return orjson.loads(b"".join(chunks))
        except orjson.JSONDecodeError:
            return None

    async def _audit(
        self,
        scope: Scope,
        request_state: dict[str, Any],
        rule: AuditRule | None,
        status: int,
        before: Any,
        body: bytes,
        after_read: Any,
    ) -> None:
        writer: AuditWriter | None = getattr(scope["app"].state, "audit", None)
        if writer is None:
            return
        if rule is None:
            rule = self._match(scope)
        path_params: dict[str, Any] = scope.get("path_params") or {}
        try:
            parsed: Any = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            parsed = None
        if 200 <= status < 400:
            outcome, after = "success", parsed if parsed is not None else after_read
        else:
            outcome = "denied" if status in (401, 403) else "failure"
            error = parsed.get("error") if isinstance(parsed, dict) else None
            after = {"status": status, "error": error}
        principal: Principal | None = request_state.get("principal")
        await writer.write(
            project_id=principal.project_id if principal else None,
            actor_id=str(principal.key_id) if principal else None,
            actor_name=principal.name if principal else None,
            action=rule.action if rule else f"{scope['method'].lower()} {scope['path']}",
            resource_type=rule.resource_type if rule else "unknown",
            resource_id=resource_id(rule, path_params, parsed if outcome == "success" else None)
            if rule
            else None,
            before=before,
            after=after,
            outcome=outcome,
            request_id=request_id_var.get(),
            ip=request_state.get("client_ip"),
        )


def _limit_headers(decision: Decision) -> list[tuple[bytes, bytes]]:
    return [
        (b"ratelimit-limit", str(decision.limit).encode()),
        (b"ratelimit-remaining", str(decision.remaining).encode()),
        (b"ratelimit-reset", str(decision.reset).encode()),
    ]


async def _rate_limited(send: Send, decision: Decision) -> None:
    body = orjson.dumps(
        {
            "error": {
                "code": "RATE_LIMITED",
                "message": "too many requests; retry after the time in Retry-After",
                "details": {"retryAfter": decision.retry_after, "limit": decision.limit},
            },
            "requestId": request_id_var.get(),
        }
    )
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(decision.retry_after).encode()),
                *_limit_headers(decision),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _bad_query(send: Send) -> None:
    body = orjson.dumps(
        {
            "error": {
                "code": "VALIDATION_ERROR",
                "message": "the query string must not contain NUL characters",
                "details": {"fields": {"query": "contains %00"}},
            },
            "requestId": request_id_var.get(),
        }
    )
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
