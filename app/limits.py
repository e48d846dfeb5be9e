"""Request body size limit (413) as pure ASGI middleware, before any parsing."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import problem


class _TooLarge(Exception):
    pass


class BodySizeLimit:
    """Reject bodies over ``max_bytes``: by Content-Length, or while streaming."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        overrides: dict[str, tuple[int, str]] | None = None,
    ) -> None:
        """``overrides``: another limit (and the setting that raises it) by exact path."""
        self.app = app
        self.max_bytes = max_bytes
        self.overrides = overrides or {}

    def _reject(self, limit: int, setting: str) -> ASGIApp:
        return problem(
            None,
            413,
            "payload_too_large",
            "Content too large",
            f"request bodies are limited to {limit} bytes",
            hint=f"split the request or raise {setting}",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes, setting = self.overrides.get(
            scope.get("path", ""), (self.max_bytes, "TEMPOFLOW_MAX_REQUEST_BYTES")
        )
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > max_bytes:
                await self._reject(max_bytes, setting)(scope, receive, send)
                return
        seen = 0
        started = rejected = False

        async def limited_receive() -> Message:
            nonlocal seen, rejected
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes and not rejected:
                    # Answer now: frameworks turn errors raised while reading the body
                    # into a 400, which would hide the real reason.
                    rejected = True
                    if not started:
                        await self._reject(max_bytes, setting)(scope, receive, send)
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if rejected:
                return  # the 413 was sent; drop whatever the app answers
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _TooLarge:
            pass
