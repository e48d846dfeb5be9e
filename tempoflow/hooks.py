"""Inbound webhooks: signature verification (pure code, no I/O).

Two schemes, both HMAC-SHA256 compared in constant time (``hmac.compare_digest``):

- ``standard`` (Standard Webhooks): ``webhook-id``, ``webhook-timestamp`` (Unix seconds,
  within the trigger's tolerance of our clock) and ``webhook-signature`` (space-separated
  ``v1,<base64>``) over ``id.timestamp.body``; the secret is ``whsec_`` + base64. The
  ``standardwebhooks`` package signs; its own ``verify`` is not used because its
  tolerance is fixed at five minutes and it decodes the body before checking.
- ``github``: ``X-Hub-Signature-256: sha256=<hex HMAC of the raw body>`` keyed by the
  secret's bytes; the delivery id is ``X-GitHub-Delivery`` (GitHub signs no timestamp).

A trigger holds one or two secrets (two while rotating): a call signed with either is
genuine.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets as _random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from standardwebhooks import Webhook

MAX_DELIVERY_ID = 128
"""Longest accepted webhook id (it becomes part of the inbox event id)."""
_DELIVERY_ID = re.compile(r"^[\x21-\x7e]{1,128}$")


class SignatureInvalid(Exception):
    """The call is not genuine (missing, malformed, stale or wrong signature)."""


def new_hook_id() -> str:
    """An unguessable hook id: 192 random bits, URL-safe."""
    return _random.token_urlsafe(24)


def hook_ref(hook_id: str) -> str:
    """A public stand-in for a hook id (the inbox event name): a digest, so the inbox
    never reveals the capability URL."""
    return hashlib.sha256(hook_id.encode()).hexdigest()[:32]


def hook_event_name(hook_id: str) -> str:
    """The inbox name of a hook's calls (``$`` keeps it apart from event type names)."""
    return f"$hook:{hook_ref(hook_id)}"


def is_hook_event(name: str) -> bool:
    return name.startswith("$hook:")


def hook_event_id(hook_id: str, delivery_id: str) -> str:
    """One inbox event per (hook, delivery id): a repeated delivery is a duplicate."""
    return f"hook:{hook_ref(hook_id)}:{delivery_id}"


def _delivery_id(value: str | None, header: str) -> str:
    if not value:
        raise SignatureInvalid(f"the {header} header is missing")
    if not _DELIVERY_ID.match(value):
        raise SignatureInvalid(f"the {header} header is not 1-128 printable characters")
    return value


def verify_standard(
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    tolerance: timedelta,
    now: datetime,
) -> str:
    """Verify a Standard Webhooks call; returns its ``webhook-id``.

    Raises:
        SignatureInvalid: a header is missing or malformed, the timestamp is outside
            ``tolerance``, or no ``v1`` signature matches any of ``secrets``.
    """
    msg_id = _delivery_id(headers.get("webhook-id"), "webhook-id")
    stamp = headers.get("webhook-timestamp")
    signature = headers.get("webhook-signature")
    if not stamp or not signature:
        raise SignatureInvalid("the webhook-timestamp or webhook-signature header is missing")
    if not stamp.isdigit() or len(stamp) > 12:
        raise SignatureInvalid("webhook-timestamp is not Unix seconds")
    sent = int(stamp)
    if abs(now.timestamp() - sent) > tolerance.total_seconds():
        raise SignatureInvalid("webhook-timestamp is outside the tolerance")
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise SignatureInvalid("the body is not UTF-8") from None
    offered: list[bytes] = []
    for part in signature.split(" "):
        version, _, value = part.partition(",")
        if version != "v1":
            continue
        try:
            offered.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    stamped = datetime.fromtimestamp(sent, tz=UTC)
    for secret in secrets:
        try:
            expected = Webhook(secret).sign(msg_id, stamped, text).split(",", 1)[1]
        except Exception:  # not whsec_ + base64: this secret verifies nothing
            continue
        digest = base64.b64decode(expected)
        # Check every candidate (no early exit on the first secret's mismatch).
        if any(hmac.compare_digest(digest, sig) for sig in offered):
            return msg_id
    raise SignatureInvalid("no signature matches")


def verify_github(body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> str:
    """Verify a GitHub-style call; returns its ``X-GitHub-Delivery``.

    Raises:
        SignatureInvalid: a header is missing or malformed, or the HMAC matches none of
            ``secrets``.
    """
    signature = headers.get("x-hub-signature-256")
    if not signature:
        raise SignatureInvalid("the X-Hub-Signature-256 header is missing")
    scheme, _, hexdigest = signature.partition("=")
    if scheme != "sha256" or not hexdigest:
        raise SignatureInvalid("X-Hub-Signature-256 is not sha256=<hex>")
    offered = hexdigest.strip().lower().encode()
    delivery = _delivery_id(headers.get("x-github-delivery"), "X-GitHub-Delivery")
    for secret in secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()
        if hmac.compare_digest(expected, offered):
            return delivery
    raise SignatureInvalid("no signature matches")


def verify(
    scheme: str,
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    tolerance: timedelta,
    now: datetime,
) -> str:
    """Verify a call by ``scheme`` (``standard`` or ``github``); returns its delivery id.
    ``headers`` must have lower-case names."""
    if scheme == "github":
        return verify_github(body, headers, secrets)
    return verify_standard(body, headers, secrets, tolerance, now)
