"""Notification channels: ``email`` and ``webhook`` built in, more through plugins.

A channel turns a rendered notification (``to`` and the ``template`` object, secret
references resolved) into one delivery and returns the provider's message id. The
built-ins reuse the actions: ``email`` sends through ``email.send`` (``to`` a string or a
list of addresses; ``template``: ``subject``, ``text`` and/or ``html``, optionally
``from``, ``cc``, ``bcc``, ``replyTo``, ``headers``, ``smtp``), ``webhook`` through
``webhook.send`` (``to`` the URL; ``template``: ``body``, ``secret``, optionally
``headers``, ``timeout``), so SMTP settings, egress rules and Standard Webhooks signing
are the actions' own; the idempotency key becomes the Message-ID and the ``webhook-id``.

Plugins (SMS, push, chat…) are callables ``register(channels)`` found through the entry
point group ``tempoflow.channels`` (like actions through ``tempoflow.actions``); they call
``channels.channel(name, template_model=…, required=…)`` on an ``async (message, ctx)``
handler returning the provider's message id (or ``None``).
"""

from __future__ import annotations

import logging
import re
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel, ConfigDict

from activities.plugins import PluginError
from activities.registry import ActionContext, ActionRegistry
from tempoflow.definition.model import CHANNEL_NAME

ENTRY_POINT_GROUP = "tempoflow.channels"
log = logging.getLogger("tempoflow.channels")


class ChannelMessage(BaseModel):
    """What a channel handler gets: the recipient(s) and the template, rendered, with
    secret values in place (never log them)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    to: Any
    template: Any
    """The channel's ``template_model`` instance."""
    key: str
    """The notification's idempotency key (the same for every attempt): send it to the
    provider where it deduplicates."""


Handler = Callable[[ChannelMessage, ActionContext], Awaitable[str | None]]


@dataclass(frozen=True)
class ChannelSpec:
    """A channel: ``name`` (what ``notify[].channel`` says), the model validating its
    ``template``, the template fields publishing requires, the handler."""

    name: str
    template_model: type[BaseModel]
    handler: Handler
    required: frozenset[str] = frozenset()
    description: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(CHANNEL_NAME, self.name):
            raise ValueError(f"channel name {self.name!r} must match {CHANNEL_NAME}")


class ChannelRegistry:
    """The notification channels a worker (and publish validation) knows."""

    def __init__(self) -> None:
        self._channels: dict[str, ChannelSpec] = {}

    def add(self, spec: ChannelSpec) -> None:
        if spec.name in self._channels:
            raise ValueError(f"channel {spec.name!r} is already registered")
        self._channels[spec.name] = spec

    def channel(
        self,
        name: str,
        *,
        template_model: type[BaseModel],
        required: frozenset[str] | set[str] = frozenset(),
        description: str = "",
    ) -> Callable[[Handler], Handler]:
        """Decorator registering ``handler`` as channel ``name``."""

        def register(handler: Handler) -> Handler:
            self.add(ChannelSpec(name, template_model, handler, frozenset(required), description))
            return handler

        return register

    def get(self, name: str) -> ChannelSpec | None:
        return self._channels.get(name)

    def names(self) -> list[str]:
        return sorted(self._channels)

    def requirements(self) -> dict[str, frozenset[str]]:
        """Channel name → template fields publishing requires (for validation)."""
        return {name: spec.required for name, spec in self._channels.items()}


class AnyTemplate(BaseModel):
    """A template passed on as it is (the action's input model checks it)."""

    model_config = ConfigDict(extra="allow")


def _via_action(
    registry: ActionRegistry,
    action: str,
    build: Callable[[Any, dict[str, Any]], dict[str, Any]],
    message_id: str,
) -> Handler:
    """A channel that sends through the registered action ``action``."""
    spec = registry.get(action)
    assert spec is not None, f"{action} is not registered"

    async def send(message: ChannelMessage, ctx: ActionContext) -> str | None:
        data = spec.input_model.model_validate(build(message.to, message.template.model_dump()))
        output = await spec.handler(data, ctx)
        return str(getattr(output, message_id))

    return send


def _email(to: Any, template: dict[str, Any]) -> dict[str, Any]:
    return {**template, "to": [to] if isinstance(to, str) else to}


def _webhook(to: Any, template: dict[str, Any]) -> dict[str, Any]:
    rest = {k: v for k, v in template.items() if k != "body"}
    return {**rest, "url": to, "payload": template.get("body")}


def builtin_channels(actions: ActionRegistry) -> ChannelRegistry:
    """``email`` and ``webhook`` on the registry's ``email.send`` and ``webhook.send``."""
    channels = ChannelRegistry()
    channels.channel(
        "email",
        template_model=AnyTemplate,
        required={"subject"},
        description="An email through email.send (Message-ID from the idempotency key).",
    )(_via_action(actions, "email.send", _email, "messageId"))
    channels.channel(
        "webhook",
        template_model=AnyTemplate,
        required={"body", "secret"},
        description="A Standard Webhooks POST through webhook.send (webhook-id = the key).",
    )(_via_action(actions, "webhook.send", _webhook, "webhookId"))
    return channels


def load_channels(actions: ActionRegistry, *, group: str = ENTRY_POINT_GROUP) -> ChannelRegistry:
    """The built-in channels, then every entry point of ``group`` (sorted by name);
    raises :class:`PluginError` naming the first plugin that fails."""
    channels = builtin_channels(actions)
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        source = f"channel entry point {ep.name!r} ({ep.value})"
        try:
            register = ep.load()
            if not callable(register):
                register = getattr(register, "register", None)
            if not callable(register):
                raise TypeError("it exposes no callable register(channels)")
            register(channels)
        except Exception as err:
            raise PluginError(source, f"{type(err).__name__}: {err}") from err
        log.info("notification channels after %s: %s", source, ", ".join(channels.names()))
    return channels


_cache: weakref.WeakKeyDictionary[ActionRegistry, ChannelRegistry] = weakref.WeakKeyDictionary()


def channels_for(actions: ActionRegistry) -> ChannelRegistry:
    """The channels of a process's action registry (loaded once per registry)."""
    found = _cache.get(actions)
    if found is None:
        found = _cache[actions] = load_channels(actions)
    return found
