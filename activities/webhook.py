"""The ``webhook.send`` action: a POST signed per the Standard Webhooks specification.

``webhook-id`` is the step's idempotency key, the same on every attempt, so a receiver
recognises a retried delivery; ``webhook-timestamp`` is the attempt's time and
``webhook-signature`` signs ``id.timestamp.body`` with the secret (``standardwebhooks``).
The request goes through the same client, egress policy, size cap and retry rules as
``http.request``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from standardwebhooks import Webhook

from activities.http import Exchange, HttpActions, HttpOutput
from activities.registry import ActionContext, ActionError, ActionRegistry
from tempoflow.error_types import ErrorType

_RESERVED = frozenset({"webhook-id", "webhook-timestamp", "webhook-signature", "content-type"})


class WebhookInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=8192, description="The receiver's http or https URL")
    payload: Any = Field(description="The JSON payload (sent as the body)")
    secret: str = Field(
        min_length=1,
        max_length=1024,
        description='The signing secret ("whsec_" + base64); pass {"$secret": "name"}',
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra headers (not the webhook-* ones)"
    )
    timeout: float | None = Field(default=None, gt=0, le=600)


class WebhookOutput(HttpOutput):
    webhookId: str = Field(description="The webhook-id sent (the step's idempotency key)")


def sign(secret: str, msg_id: str, body: str, now: datetime) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body``."""
    try:
        signer = Webhook(secret)
    except Exception:
        raise ActionError(
            ErrorType.WEBHOOK_SECRET_INVALID,
            "the webhook secret is not a Standard Webhooks secret (whsec_ + base64)",
            retryable=False,
        ) from None
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signer.sign(msg_id, now, body),
    }


class WebhookActions:
    """``webhook.send`` on the worker's HTTP client."""

    def __init__(self, http: HttpActions) -> None:
        self.http = http

    async def send(self, data: WebhookInput, ctx: ActionContext) -> WebhookOutput:
        body = json.dumps(data.payload, separators=(",", ":"))
        headers = {k: v for k, v in data.headers.items() if k.lower() not in _RESERVED}
        headers["Content-Type"] = "application/json"
        headers.update(sign(data.secret, ctx.idempotency_key, body, datetime.now(UTC)))
        settings = self.http.settings
        async with ctx.heartbeating():
            out = await self.http.exchange(
                ctx.tenant,
                Exchange(
                    method="POST",
                    url=data.url,
                    headers=headers,
                    content=body.encode(),
                    timeout=data.timeout or settings.http_default_timeout_seconds,
                    # A redirected POST would lose its body (or be re-sent unsigned elsewhere).
                    max_redirects=0,
                ),
            )
        return WebhookOutput(**out.model_dump(), webhookId=ctx.idempotency_key)

    async def aclose(self) -> None:
        await self.http.aclose()


def register_webhook(registry: ActionRegistry, http: HttpActions) -> None:
    """Register ``webhook.send`` on ``registry``, sending through ``http``."""
    registry.action(
        "webhook.send",
        input_model=WebhookInput,
        output_model=WebhookOutput,
        description="POSTs a JSON payload signed per Standard Webhooks; webhook-id is the "
        "step's idempotency key, so retries carry the same id.",
    )(WebhookActions(http).send)
