"""Notification policies: publish validation, rendering in the workflow, channels."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import BaseModel

from activities.builtin import default_registry
from activities.channels import ChannelRegistry, ChannelSpec, builtin_channels, load_channels
from expression import EvalContext
from tempoflow.definition import parse_definition, validate_definition
from temporal_workflows.context import RunContext
from temporal_workflows.models import RunInput
from temporal_workflows.notify import Notifier, notification_id, notification_key

START = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
CHANNELS = {"email": frozenset({"subject"}), "webhook": frozenset({"body", "secret"})}
EMAIL = {
    "on": "completed",
    "channel": "email",
    "to": "ops@example.com",
    "template": {"subject": "done", "text": "ok"},
}


def codes(body: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (i.path, i.code)
        for i in validate_definition(body, ["core.noop"], channels=CHANNELS)
        if i.severity == "error"
    }


def noop(**extra: Any) -> dict[str, Any]:
    return {"id": "a", "type": "action.call", "action": "core.noop", **extra}


def test_a_valid_policy_publishes() -> None:
    body = {
        "steps": [noop(notify=[EMAIL])],
        "notify": [
            {
                **EMAIL,
                "on": "failed",
                "template": {"subject": {"$expr": "notification.error.message"}},
            },
            {**EMAIL, "on": "waiting"},
        ],
    }
    assert codes(body) == set()


def test_validation_finds_every_problem_with_its_path() -> None:
    body = {
        "steps": [
            {
                "id": "s",
                "type": "state.set",
                "values": {"x": 1},
                "notify": [
                    {**EMAIL, "on": "waiting"},
                    {**EMAIL, "channel": "sms"},
                    {**EMAIL, "template": {"text": "no subject"}},
                    {**EMAIL, "to": {"$expr": "nosuch.name"}},
                    {**EMAIL, "to": {"$secret": "addr"}},
                    {**EMAIL, "on": "finished"},
                ],
            },
            noop(id="b", notify=[{**EMAIL, "on": "waiting"}]),
        ]
    }
    found = codes(body)
    assert ("/steps/0/notify/0/on", "notify.on_unsupported") in found
    assert ("/steps/0/notify/1/channel", "notify.channel_unknown") in found
    assert ("/steps/0/notify/2/template", "notify.template_incomplete") in found
    assert any(p == "/steps/0/notify/3/to" for p, _ in found)
    assert ("/steps/0/notify/4/to", "secret.not_allowed") in found
    assert ("/steps/0/notify/5/on", "schema.literal_error") in found
    # an action.call waits only when it asks an operator
    assert ("/steps/1/notify/0/on", "notify.on_unsupported") in found
    assert codes({"steps": [noop(onFailure="ask", notify=[{**EMAIL, "on": "waiting"}])]}) == set()


def test_secret_references_in_a_template_are_allowed_and_checked() -> None:
    hook = {
        "on": "started",
        "channel": "webhook",
        "to": "https://hooks.example.com/x",
        "template": {"body": {"run": {"$expr": "meta.runId"}}, "secret": {"$secret": "bad name"}},
    }
    assert codes({"steps": [noop(notify=[hook])]}) == {
        ("/steps/0/notify/0/template/secret/$secret", "secret.invalid_name")
    }


def ctx(loop: str | None = None) -> RunContext:
    inp = RunInput(
        run_id="r1",
        tenant="acme",
        definition_key="k",
        definition_version=1,
        definition={},
        input={"customer": "ada@example.com"},
    )
    return RunContext(
        inp,
        workflow_id="acme/r1",
        started_at=START,
        attempt=1,
        eval_context=EvalContext(now=lambda: START),
        loop=loop,
    )


def render(step_notify: list[dict[str, Any]], event: str, **info: Any) -> list[Any]:
    """The requests the step's policies on ``event`` render to (as ``Notifier.fire``
    renders them, without scheduling the activity)."""
    step = parse_definition({"steps": [noop(notify=step_notify)]}).steps[0]
    matched = [(f"/steps/0/notify/{i}", n) for i, n in enumerate(step.notify) if n.on == event]
    scope = ctx().child(
        names={"notification": {"event": event, "step": {"id": step.id}, **info}}, isolated=False
    )
    return [Notifier([])._render(scope, p, n, event, "/steps/0", step) for p, n in matched]


def test_rendering_reads_the_run_envelope_and_the_notification() -> None:
    (request,) = render(
        [
            {
                "on": "failed",
                "channel": "email",
                "to": {"$expr": "payload.customer"},
                "template": {
                    "subject": {"$expr": "'Step ' & notification.step.id & ' failed'"},
                    "text": {"$expr": "notification.error.message"},
                    "smtp": {"host": "mail", "password": {"$secret": "smtp-pass"}},
                },
            }
        ],
        "failed",
        error={"message": "boom"},
    )
    assert request.to == "ada@example.com"
    assert request.template["subject"] == "Step a failed"
    assert request.template["text"] == "boom"
    # the reference stays a reference (resolved by the activity only)
    assert request.template["smtp"]["password"] == {"$secret": "smtp-pass"}
    assert request.secrets == ["/smtp/password"]
    assert request.render_error is None
    assert request.id == notification_id(request.key)


def test_a_template_that_cannot_render_is_recorded_not_raised() -> None:
    (request,) = render(
        [{**EMAIL, "on": "failed", "template": {"subject": {"$expr": "$error('nope')"}}}],
        "failed",
    )
    assert request.render_error is not None
    assert request.render_error["type"] == "ExpressionError"
    assert request.to is None  # nothing rendered is kept


def test_keys_differ_by_iteration_event_channel_and_policy() -> None:
    base = notification_key(ctx(), "/steps/0/notify/0", "/steps/0", "completed", "email")
    assert base == notification_key(ctx(), "/steps/0/notify/0", "/steps/0", "completed", "email")
    others = {
        notification_key(ctx("1"), "/steps/0/notify/0", "/steps/0", "completed", "email"),
        notification_key(ctx(), "/steps/0/notify/0", "/steps/0", "failed", "email"),
        notification_key(ctx(), "/steps/0/notify/0", "/steps/0", "completed", "webhook"),
        notification_key(ctx(), "/steps/0/notify/1", "/steps/0", "completed", "email"),
    }
    assert base not in others and len(others) == 4


def test_a_definition_without_notify_fires_nothing() -> None:
    definition = parse_definition({"steps": [noop()]})
    notifier = Notifier(list(definition.notify))
    notifier.fire(ctx(), "started")
    notifier.fire(ctx(), "waiting", step=definition.steps[0], path="/steps/0")
    assert notifier.pending == []


def test_builtin_channels_and_their_requirements() -> None:
    channels = builtin_channels(default_registry())
    assert channels.names() == ["email", "webhook"]
    assert channels.requirements() == CHANNELS
    assert load_channels(default_registry(), group="tempoflow.channels.none").names() == [
        "email",
        "webhook",
    ]


class SmsTemplate(BaseModel):
    text: str


def test_a_plugin_channel_registers_and_names_are_checked() -> None:
    channels = ChannelRegistry()

    @channels.channel("sms", template_model=SmsTemplate, required={"text"})
    async def send(message: Any, ctx: Any) -> str:
        return "sms-1"

    assert channels.requirements() == {"sms": frozenset({"text"})}
    with pytest.raises(ValueError, match="already registered"):
        channels.channel("sms", template_model=SmsTemplate)(send)
    with pytest.raises(ValueError, match="must match"):
        ChannelSpec("Bad Name", SmsTemplate, send)


def register_sms(channels: ChannelRegistry) -> None:
    """A channel plugin, loaded through a real entry point below."""

    @channels.channel("sms", template_model=SmsTemplate, required={"text"})
    async def send(message: Any, ctx: Any) -> str:
        return "sms-1"


def register_broken(channels: ChannelRegistry) -> None:
    channels.channel("email", template_model=SmsTemplate)(register_broken)  # type: ignore[arg-type]


def test_channel_plugins_load_through_the_entry_point_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from importlib.metadata import EntryPoint

    import activities.channels as module
    from activities.plugins import PluginError

    points = [EntryPoint("acme-sms", f"{__name__}:register_sms", "tempoflow.channels")]
    monkeypatch.setattr(module, "entry_points", lambda group: points if group == "g" else [])
    assert sorted(load_channels(default_registry(), group="g").names()) == [
        "email",
        "sms",
        "webhook",
    ]
    points[:] = [EntryPoint("broken", f"{__name__}:register_broken", "tempoflow.channels")]
    with pytest.raises(PluginError, match=r"broken.*already registered"):
        load_channels(default_registry(), group="g")


def test_secret_references_of_templates_are_listed_for_the_unknown_secret_warning() -> None:
    from tempoflow.definition.validation import secret_references, unknown_secret_issues

    policy = {**EMAIL, "template": {"subject": "x", "smtp": {"password": {"$secret": "smtp"}}}}
    body = {"steps": [noop(notify=[policy])], "notify": [policy]}
    refs = secret_references(body)
    assert refs == [
        ("/notify/0/template/smtp/password", "smtp"),
        ("/steps/0/notify/0/template/smtp/password", "smtp"),
    ]
    (warning, _) = unknown_secret_issues(refs, set())
    assert warning.severity == "warning" and "notification" in warning.message


async def test_an_unreachable_delivery_log_gives_the_attempt_back() -> None:
    """The claim cannot be written (PostgreSQL refuses the connection): the activity
    sends nothing and fails as ``BookkeepingUnavailable``, which the workflow answers
    with a timer and a new activity, not a spent attempt."""
    from temporalio.exceptions import ApplicationError
    from temporalio.testing import ActivityEnvironment

    from activities.notify import NotificationActivities
    from activities.secrets import SecretResolver
    from projections.db import create_engine, session_factory
    from tempoflow.keyring import Keyring
    from temporal_workflows.models import NotificationRequest
    from tests.servers import closed_port

    sent: list[Any] = []
    channels = ChannelRegistry()

    @channels.channel("sms", template_model=SmsTemplate)
    async def send(message: Any, ctx: Any) -> str:
        sent.append(message)
        return "sms-1"

    with closed_port() as port:
        engine = create_engine(f"postgresql+asyncpg://u:p@127.0.0.1:{port}/db", pre_ping=False)
        sessions = session_factory(engine)
        activities = NotificationActivities(
            sessions, channels, SecretResolver(sessions, Keyring([bytes(32)]))
        )
        request = NotificationRequest(
            id="n1",
            key="k1",
            tenant="acme",
            run_id="r1",
            workflow_id="acme/r1",
            definition_key="d",
            policy="/notify/0",
            event="started",
            channel="sms",
            to="+1",
            template={"text": "hi"},
        )
        with pytest.raises(ApplicationError) as raised:
            await ActivityEnvironment().run(activities.notify, request)
        await engine.dispose()
    assert raised.value.type == "BookkeepingUnavailable" and raised.value.non_retryable
    assert sent == []
