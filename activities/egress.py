"""Egress for the worker's HTTP actions: the tenant's allow-list (cached) and an httpx
transport that resolves, checks and connects to the checked address only.

The check sits where the socket is opened (an httpcore network backend), so whatever
opens a connection — the first request, a redirect, a reconnect of a pooled connection —
resolves the host once, asks :func:`tempoflow.egress.decide` about every address, and
connects to one of those addresses: a second DNS answer (rebinding) never reaches a
socket. The URL keeps its host name, so the ``Host`` header, TLS SNI and certificate
checks are those of the name. Connections are pooled per allow-list, so a connection
opened under one tenant's list is never reused under another's.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import certifi
import httpcore
import httpx
from cachetools import TTLCache
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.registry import ActionError
from projections import egress as egress_rules
from tempoflow.egress import AllowList, Decision, IPAddress, decide_addresses
from tempoflow.error_types import ErrorType

log = logging.getLogger("tempoflow.egress")

POLICY_EXTENSION = "tempoflow.egress"
"""The request extension carrying the :class:`AllowList` a request is checked under."""
MAX_POOLS = 64
"""Allow-lists a worker keeps connection pools for; the least recently used pool is
closed beyond it (a request still on it fails retryably and reconnects)."""

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]


class EgressDeniedError(Exception):
    """The egress policy refused a connection."""

    def __init__(self, host: str, decision: Decision) -> None:
        super().__init__(decision.describe(host))
        self.host = host
        self.decision = decision


def denied_error(host: str, decision: Decision) -> ActionError:
    """The step's ``EgressDenied`` failure (not retryable) naming the rule."""
    return ActionError(
        ErrorType.EGRESS_DENIED,
        decision.describe(host),
        retryable=False,
        details={"rule": decision.rule, "host": host, "address": decision.address},
    )


async def pinned_socket(
    host: str,
    port: int,
    allow: AllowList,
    connect_timeout: float,
    resolver: Resolver | None = None,
) -> socket.socket:
    """A socket connected to an address of ``host`` the egress policy allows (every
    resolved address checked; the one connected to is one of them: no rebinding); for
    clients that take a connected socket (SMTP). Raises ``EgressDenied``."""
    addresses = await (resolver or resolve)(host, port)
    decision = decide_addresses(host, addresses, allow)
    if not decision.allowed or decision.address is None:
        raise denied_error(host, decision)
    address = decision.address
    return await asyncio.to_thread(socket.create_connection, (address, port), connect_timeout)


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (an address literal resolves to itself)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[str, IPAddress] = {}
    for _family, _type, _proto, _name, sockaddr in infos:
        text = str(sockaddr[0]).split("%", 1)[0]  # drop an IPv6 zone
        seen.setdefault(text, ipaddress.ip_address(text))
    return list(seen.values())


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Opens TCP connections only to addresses the egress policy allows."""

    def __init__(self, allow: AllowList, resolver: Resolver = resolve) -> None:
        self._allow = allow
        self._resolve = resolver
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._resolve(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except OSError as err:
            raise httpcore.ConnectError(f"cannot resolve {host}: {err}") from None
        decision = decide_addresses(host, addresses, self._allow)
        if not decision.allowed:
            raise EgressDeniedError(host, decision)
        error: Exception | None = None
        for address in addresses:  # every one was checked
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as err:
                error = err
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not an egress destination")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PinnedPool(httpx.AsyncHTTPTransport):
    """httpx's transport over a connection pool with a :class:`PinnedBackend`. httpx takes
    no network backend, so the pool it built is replaced (the one private attribute we
    touch: ``_pool``, which is all ``AsyncHTTPTransport`` delegates to)."""

    def __init__(self, allow: AllowList, limits: httpx.Limits, resolver: Resolver) -> None:
        super().__init__(trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl.create_default_context(cafile=certifi.where()),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PinnedBackend(allow, resolver),
        )


class EgressTransport(httpx.AsyncBaseTransport):
    """Dispatches each request to the pool of its allow-list (``POLICY_EXTENSION``).
    Proxies from the environment are ignored: a proxy would connect for us, unchecked."""

    def __init__(self, *, max_connections: int = 100, resolver: Resolver = resolve) -> None:
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=min(20, max_connections)
        )
        self._resolver = resolver
        self._pools: OrderedDict[AllowList, _PinnedPool] = OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()

    def _pool(self, allow: AllowList) -> _PinnedPool:
        pool = self._pools.get(allow)
        if pool is None:
            pool = self._pools[allow] = _PinnedPool(allow, self._limits, self._resolver)
            while len(self._pools) > MAX_POOLS:
                _, old = self._pools.popitem(last=False)
                task = asyncio.get_running_loop().create_task(old.aclose())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
        self._pools.move_to_end(allow)
        return pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        allow = request.extensions.get(POLICY_EXTENSION)
        if not isinstance(allow, AllowList):
            raise RuntimeError("an egress request must carry its allow-list")
        return await self._pool(allow).handle_async_request(request)

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), OrderedDict()
        for pool in pools:
            await pool.aclose()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


class AllowLists:
    """Tenants' allow-lists as the worker sees them: read from PostgreSQL, kept for
    ``ttl`` seconds (a change applies to requests after at most that long). Without a
    database (e.g. a registry built for the API) every list is empty."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession] | None, ttl: float) -> None:
        self._sessions = sessions
        self._cache: TTLCache[str, AllowList] = TTLCache(
            maxsize=10_000 if ttl > 0 else 0, ttl=ttl if ttl > 0 else 1
        )
        # The last list read per tenant, used while the database cannot be read: an
        # outage must not fail requests it had allowed (bounded like the cache).
        self._last: OrderedDict[str, AllowList] = OrderedDict()

    async def get(self, tenant: str) -> AllowList:
        found = self._cache.get(tenant)
        if found is not None:
            return found
        if self._sessions is None:
            return AllowList()
        try:
            async with self._sessions() as session:
                entries, _ = await egress_rules.get_allow_list(session, tenant)
        except Exception as err:
            last = self._last.get(tenant)
            if last is None:
                raise
            log.warning("egress rules of %s unreadable (%r); using the last read", tenant, err)
            return last
        allow = AllowList.parse(entries)
        if self._cache.maxsize:
            self._cache[tenant] = allow
        self._last[tenant] = allow
        self._last.move_to_end(tenant)
        while len(self._last) > 10_000:
            self._last.popitem(last=False)
        return allow
