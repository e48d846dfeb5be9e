"""The ``http.request`` action, and the HTTP exchange ``webhook.send`` shares.

One ``httpx.AsyncClient`` per worker (made on first use, closed when the worker stops);
every connection goes through the egress policy (``activities/egress.py``). Redirects are
followed here, one hop at a time, so each hop's URL is checked like the first.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from activities.egress import (
    POLICY_EXTENSION,
    AllowLists,
    EgressDeniedError,
    EgressTransport,
    denied_error,
    resolve,
)
from activities.registry import ActionContext, ActionError, ActionRegistry
from tempoflow.egress import ALLOWED_SCHEMES, Decision
from tempoflow.error_types import ErrorType
from tempoflow.settings import Settings

EXCERPT_CHARS = 1000
"""Characters of an unaccepted response's body its error carries."""
_EXCERPT_BYTES = 4 * EXCERPT_CHARS
REDIRECTS = frozenset({301, 302, 303, 307, 308})
_STATUS_CLASS = r"^[1-5]xx$"

Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
Scalar = str | int | float | bool


def parse_retry_after(value: str | None, now: datetime | None = None) -> timedelta | None:
    """A ``Retry-After`` header (delay in seconds or an HTTP date) as a delay from now;
    None when absent or unreadable, zero for a date in the past."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when - (now or datetime.now(UTC)), timedelta(0))


def status_accepted(status: int, accepted: list[int | str] | None) -> bool:
    if accepted is None:
        return 200 <= status < 300
    return any(
        status == item if isinstance(item, int) else str(status)[0] == item[0] for item in accepted
    )


BodyEncoding = Literal["json", "text", "base64"]


def decode_body(
    content: bytes, content_type: str | None, charset: str | None
) -> tuple[Any, BodyEncoding]:
    """The body as JSON (declared JSON that parses), text, or base64 for bytes that are
    not text; with the encoding used (``json``, ``text``, ``base64``)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    try:
        text = content.decode(charset or "utf-8")
    except (UnicodeDecodeError, LookupError):
        return base64.b64encode(content).decode("ascii"), "base64"
    if media == "application/json" or media.endswith("+json"):
        if not text.strip():
            return None, "json"
        try:
            return json.loads(text), "json"
        except ValueError:
            pass
    return text, "text"


class TooLargeError(Exception):
    pass


async def read_capped(response: httpx.Response, cap: int) -> bytes:
    """The (decoded) body, refusing more than ``cap`` bytes: stops reading there."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise TooLargeError(f"the response declares {declared} bytes")
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > cap:
            raise TooLargeError(f"the response is over {cap} bytes")
    return bytes(body)


async def read_excerpt(response: httpx.Response) -> str:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) >= _EXCERPT_BYTES:
            break
    return bytes(body).decode(response.charset_encoding or "utf-8", "replace")[:EXCERPT_CHARS]


@dataclass(frozen=True)
class Exchange:
    """A request to send: the parts httpx takes, plus the limits of this attempt."""

    method: str
    url: str
    headers: dict[str, str]
    params: dict[str, Any] | None = None
    content: bytes | None = None
    timeout: float = 30.0
    max_redirects: int = 5
    max_bytes: int | None = None
    accepted: list[int | str] | None = None


class HttpOutput(BaseModel):
    status: int
    headers: dict[str, str]
    body: Any = None
    bodyEncoding: Literal["json", "text", "base64"] = Field(
        description="How body is given: parsed JSON, text, or base64 of bytes that are not text"
    )
    url: str = Field(description="The URL that answered (after redirects)")
    durationMs: float


class HttpActions:
    """The worker's HTTP client and the exchange both HTTP actions use."""

    def __init__(self, settings: Settings, allow_lists: AllowLists, resolver: Any = None) -> None:
        self.settings = settings
        self.allow_lists = allow_lists
        self._resolver = resolver or resolve
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def client(self) -> httpx.AsyncClient:
        """The worker's client, made on first use (on the worker's event loop)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            transport = EgressTransport(
                max_connections=self.settings.http_max_connections, resolver=self._resolver
            )
            self._client = httpx.AsyncClient(
                transport=transport, follow_redirects=False, trust_env=False
            )
            self._loop = loop
        return self._client

    async def request(self, data: HttpRequestInput, ctx: ActionContext) -> HttpOutput:
        """The ``http.request`` handler."""
        async with ctx.heartbeating():  # a cancelled run reaches a request in flight
            return await self.exchange(ctx.tenant, build_exchange(data, ctx, self.settings))

    async def aclose(self) -> None:
        """Close the worker's client (at worker shutdown)."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def exchange(self, tenant: str, req: Exchange) -> HttpOutput:
        """Send ``req`` (following redirects, each checked), read the body under the cap;
        ``ActionError`` for every failure, retryable or not as documented."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(req.timeout):
                response, body = await self._send(tenant, req)
        except ActionError:
            raise
        except EgressDeniedError as err:
            raise denied_error(err.host, err.decision) from None
        except (TimeoutError, httpx.TimeoutException):
            raise ActionError(
                ErrorType.HTTP_TIMEOUT,
                f"{req.method} {req.url} took longer than {req.timeout:g} s",
            ) from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as err:
            raise ActionError(
                ErrorType.HTTP_URL_INVALID, f"invalid URL: {err}", retryable=False
            ) from None
        except (httpx.RequestError, httpx.StreamError) as err:
            raise ActionError(
                ErrorType.HTTP_CONNECTION_ERROR,
                f"{req.method} {req.url} failed: {type(err).__name__}: {err}",
            ) from None
        value, encoding = decode_body(
            body, response.headers.get("content-type"), response.charset_encoding
        )
        return HttpOutput(
            status=response.status_code,
            headers={k.lower(): ", ".join(response.headers.get_list(k)) for k in response.headers},
            body=value,
            bodyEncoding=encoding,
            url=str(response.url),
            durationMs=round((time.monotonic() - started) * 1000, 3),
        )

    async def _send(self, tenant: str, req: Exchange) -> tuple[httpx.Response, bytes]:
        allow = await self.allow_lists.get(tenant)
        cap = min(
            req.max_bytes or self.settings.http_max_response_bytes,
            self.settings.http_max_response_bytes,
        )
        method, content, headers = req.method, req.content, dict(req.headers)
        url = _checked_url(req.url)
        if req.params:
            # Added to the URL's own parameters (httpx's params= would replace them).
            url = url.copy_merge_params(_query(req.params))
        client = self.client()
        for hop in range(req.max_redirects + 1):
            request = client.build_request(
                method,
                url,
                headers=headers,
                content=content,
                timeout=req.timeout,
                extensions={POLICY_EXTENSION: allow},
            )
            response = await client.send(request, stream=True)
            try:
                location = response.headers.get("location")
                if response.status_code in REDIRECTS and location and req.max_redirects:
                    if hop == req.max_redirects:
                        raise ActionError(
                            ErrorType.HTTP_TOO_MANY_REDIRECTS,
                            f"more than {req.max_redirects} redirect(s) from {req.url}",
                            retryable=False,
                            details={"location": location},
                        )
                    try:
                        target = response.url.join(location)
                    except httpx.InvalidURL as err:
                        raise ActionError(
                            ErrorType.HTTP_URL_INVALID,
                            f"invalid redirect location {location!r}: {err}",
                            retryable=False,
                        ) from None
                    if target.scheme not in ALLOWED_SCHEMES:
                        raise denied_error(target.host, Decision(False, "scheme"))
                    if (target.scheme, target.host, target.port) != (
                        response.url.scheme,
                        response.url.host,
                        response.url.port,
                    ):
                        # Credentials stay with the origin they were meant for.
                        for name in [h for h in headers if h.lower() in _CREDENTIALS]:
                            del headers[name]
                    if response.status_code == 303 or (
                        response.status_code in (301, 302) and method == "POST"
                    ):
                        method, content = ("HEAD" if method == "HEAD" else "GET"), None
                        for name in [h for h in headers if h.lower() in _BODY_HEADERS]:
                            del headers[name]
                    url = target
                    continue
                if not status_accepted(response.status_code, req.accepted):
                    raise await self._status_error(req, response)
                try:
                    return response, await read_capped(response, cap)
                except TooLargeError as err:
                    raise ActionError(
                        ErrorType.HTTP_RESPONSE_TOO_LARGE,
                        f"{err}; the limit is {cap} bytes",
                        retryable=False,
                        details={"status": response.status_code, "limitBytes": cap},
                    ) from None
            finally:
                await response.aclose()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _status_error(self, req: Exchange, response: httpx.Response) -> ActionError:
        status = response.status_code
        retryable = status == 429 or status >= 500
        delay = None
        if retryable:
            delay = parse_retry_after(response.headers.get("retry-after"))
            if delay is not None:
                delay = min(delay, timedelta(seconds=self.settings.http_max_retry_after_seconds))
        try:
            excerpt = await read_excerpt(response)
        except httpx.HTTPError:
            excerpt = ""
        return ActionError(
            ErrorType.HTTP_STATUS_ERROR,
            f"{req.method} {response.url} answered {status}",
            retryable=retryable,
            next_retry_delay=delay,
            details={
                "status": status,
                "url": str(response.url),
                "headers": {
                    k: v for k, v in list(response.headers.items())[:50] if k != "set-cookie"
                },
                "bodyExcerpt": excerpt,
                **({"retryAfterSeconds": delay.total_seconds()} if delay is not None else {}),
            },
        )


_CREDENTIALS = frozenset({"authorization", "cookie", "proxy-authorization"})
_BODY_HEADERS = frozenset({"content-type", "content-length", "content-encoding"})


def _checked_url(raw: str) -> httpx.URL:
    try:
        url = httpx.URL(raw)
    except (httpx.InvalidURL, TypeError, ValueError) as err:
        raise ActionError(
            ErrorType.HTTP_URL_INVALID, f"invalid URL {raw!r}: {err}", retryable=False
        ) from None
    if url.scheme not in ALLOWED_SCHEMES:
        raise denied_error(url.host or raw, Decision(False, "scheme"))
    if not url.host:
        raise ActionError(
            ErrorType.HTTP_URL_INVALID, f"invalid URL {raw!r}: no host", retryable=False
        )
    return url


class HttpRequestInput(BaseModel):
    """What ``http.request`` sends. Give at most one of ``json``, ``body`` and ``form``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    method: Method = "GET"
    url: str = Field(max_length=8192, description="An http or https URL")
    query: dict[str, Scalar | list[Scalar]] | None = Field(
        default=None, description="Query parameters, added to those in the URL"
    )
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json", description="A JSON body")
    body: str | None = Field(default=None, description="A raw (text) body")
    form: dict[str, Scalar] | None = Field(default=None, description="A form-encoded body")
    timeout: float | None = Field(
        default=None,
        gt=0,
        le=600,
        description="Seconds for the whole attempt (worker default when absent)",
    )
    acceptedStatuses: list[int | str] | None = Field(
        default=None,
        max_length=100,
        description='Statuses that count as success: numbers or classes like "4xx"; '
        "default 200-299",
    )
    idempotencyHeader: str | None = Field(
        default="Idempotency-Key",
        max_length=100,
        description="Header carrying the step's idempotency key; null sends none. A "
        "header of that name in headers wins.",
    )
    maxRedirects: int | None = Field(default=None, ge=0, le=20)
    maxResponseBytes: int | None = Field(
        default=None, ge=1, description="Lower the worker's response size cap"
    )

    @field_validator("acceptedStatuses")
    @classmethod
    def _statuses(cls, value: list[int | str] | None) -> list[int | str] | None:
        for item in value or []:
            if isinstance(item, int) and not 100 <= item <= 599:
                raise ValueError(f"{item} is not an HTTP status")
            if isinstance(item, str) and not re.match(_STATUS_CLASS, item):
                raise ValueError(f'{item!r} is not a status class like "4xx"')
        return value

    @model_validator(mode="after")
    def _one_body(self) -> HttpRequestInput:
        given = [n for n in ("json_body", "body", "form") if n in self.model_fields_set]
        if len(given) > 1:
            names = ", ".join("json" if n == "json_body" else n for n in given)
            raise ValueError(f"give at most one of json, body and form (got {names})")
        return self


def build_exchange(data: HttpRequestInput, ctx: ActionContext, settings: Settings) -> Exchange:
    headers = dict(data.headers)
    lowered = {k.lower() for k in headers}
    content: bytes | None = None
    if "json_body" in data.model_fields_set:
        content = json.dumps(data.json_body, separators=(",", ":")).encode()
        if "content-type" not in lowered:
            headers["Content-Type"] = "application/json"
    elif data.body is not None:
        content = data.body.encode()
    elif data.form is not None:
        content = str(httpx.QueryParams({k: _form_value(v) for k, v in data.form.items()})).encode()
        if "content-type" not in lowered:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
    if data.idempotencyHeader and data.idempotencyHeader.lower() not in lowered:
        headers[data.idempotencyHeader] = ctx.idempotency_key
    return Exchange(
        method=data.method,
        url=data.url,
        headers=headers,
        params=data.query,
        content=content,
        timeout=data.timeout or settings.http_default_timeout_seconds,
        max_redirects=(
            settings.http_max_redirects
            if data.maxRedirects is None
            else min(data.maxRedirects, settings.http_max_redirects)
        ),
        max_bytes=data.maxResponseBytes,
        accepted=data.acceptedStatuses,
    )


def _query(params: dict[str, Any]) -> dict[str, Any]:
    return {
        k: [_form_value(x) for x in v] if isinstance(v, list) else _form_value(v)
        for k, v in params.items()
    }


def _form_value(value: Scalar) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


def register_http(registry: ActionRegistry, http: HttpActions) -> None:
    """Register ``http.request`` on ``registry``, sending through ``http``."""
    registry.action(
        "http.request",
        input_model=HttpRequestInput,
        output_model=HttpOutput,
        description="Sends an HTTP request (egress policy checked, size capped); returns "
        "status, headers, body and duration.",
    )(http.request)
