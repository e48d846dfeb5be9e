"""Build and run the Temporal worker (interpreter workflow + activities)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities import runlogs
from activities.actions import TempoflowActivities
from activities.builtin import close_resources
from activities.channels import ChannelRegistry, channels_for
from activities.flow import FlowActivities
from activities.notify import NotificationActivities
from activities.plugins import load_plugins
from activities.presence import PresenceReporter
from activities.registry import ActionRegistry
from activities.retention import Pruner
from activities.telemetry import sdk_metrics
from activities.tracing import client_interceptors
from launcher.search_attributes import ensure_registered
from launcher.worker_http import WorkerHttp, worker_app
from projections.db import create_engine, session_factory
from tempoflow.keyring import Keyring
from tempoflow.settings import Settings
from tempoflow.temporal_client import connect_temporal
from temporal_workflows.gate import GateWorkflow
from temporal_workflows.interpreter import InterpreterWorkflow
from temporal_workflows.notify import ResendWorkflow

log = logging.getLogger("tempoflow.worker")

# The pure packages workflow code imports (the core, the expression contract, the workflow
# package) and their libraries: deterministic and side-effect free at import; passing them
# through saves re-importing them per run, and jsonata's thread-local needs it. The
# database and activity packages stay out (import-linter forbids workflow code to import
# them; see pyproject.toml).
PASSTHROUGH = (
    "expression",
    "tempoflow",
    "temporal_workflows",
    "jsonata",
    "jsonschema",
    "pydantic",
    "pydantic_core",
    "annotated_types",
)


def sandboxed_runner() -> SandboxedWorkflowRunner:
    """The workflow runner shared by the Tempoflow worker and the benchmark baseline."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH)
    )


def create_worker(
    client: Client,
    *,
    task_queue: str,
    registry: ActionRegistry,
    sessions: async_sessionmaker[AsyncSession],
    workflows: Sequence[type] = (),
    activities: Sequence[Any] = (),
    max_concurrent_activities: int = 100,
    max_concurrent_local_activities: int = 100,
    max_concurrent_workflow_tasks: int = 100,
    workflow_task_pollers: int = 5,
    activity_task_pollers: int = 5,
    graceful_shutdown: timedelta = timedelta(seconds=5),
    workflow_runner: WorkflowRunner | None = None,
    keyring: Keyring | None = None,
    channels: ChannelRegistry | None = None,
) -> Worker:
    """A worker running the interpreter and the action/projection activities
    (``keyring``: the secret store's keys, by default those of ``Settings()``) and the
    notification activity (``channels``: the built-ins and the ``tempoflow.channels``
    plugins on ``registry``'s actions by default)."""
    impl = TempoflowActivities(registry, sessions, keyring)
    notifier = NotificationActivities(sessions, channels or channels_for(registry), impl.secrets)
    flow = FlowActivities(impl.writer.write)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[InterpreterWorkflow, ResendWorkflow, GateWorkflow, *workflows],
        activities=[
            impl.invoke_action,
            impl.project,
            impl.register_wait,
            impl.resolve_definition,
            notifier.notify,
            flow.acquire,
            flow.check,
            flow.close,
            flow.grant,
            *activities,
        ],
        workflow_runner=workflow_runner or sandboxed_runner(),
        max_concurrent_activities=max_concurrent_activities,
        max_concurrent_local_activities=max_concurrent_local_activities,
        max_concurrent_workflow_tasks=max_concurrent_workflow_tasks,
        max_concurrent_workflow_task_polls=workflow_task_pollers,
        max_concurrent_activity_task_polls=activity_task_pollers,
        graceful_shutdown_timeout=graceful_shutdown,
    )


async def run_worker(settings: Settings, registry: ActionRegistry | None = None) -> None:
    """Run the worker until SIGINT/SIGTERM, then shut down gracefully.

    Without ``registry``, the built-ins and every plugin (entry points,
    ``TEMPOFLOW_ACTION_MODULES``) are loaded first: a plugin that fails raises
    :class:`activities.plugins.PluginError` before anything connects.
    """
    engine = create_engine(settings.sqlalchemy_url, pool_size=20, pre_ping=False)
    sessions = session_factory(engine)  # connects on first use
    if registry is None:
        loaded = load_plugins(settings.action_modules, settings=settings, sessions=sessions)
        registry = loaded.registry
        log.info("loaded %d actions: %s", len(registry.names()), loaded.summary())
    client = await connect_temporal(
        settings, runtime=sdk_metrics().runtime, interceptors=client_interceptors(settings)
    )
    await ensure_registered(client, settings.temporal_namespace)
    runlogs.install(logging.getLevelName(settings.run_log_level.upper()))
    worker = create_worker(
        client,
        task_queue=settings.task_queue,
        registry=registry,
        sessions=sessions,
        keyring=settings.keyring,
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        max_concurrent_local_activities=settings.worker_max_concurrent_local_activities,
        max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
        workflow_task_pollers=settings.worker_workflow_task_pollers,
        activity_task_pollers=settings.worker_activity_task_pollers,
    )
    http: WorkerHttp | None = None
    if settings.worker_metrics_port:
        http = WorkerHttp(
            worker_app(client, sessions, settings),
            settings.worker_metrics_host,
            settings.worker_metrics_port,
        )
        await http.start()
        log.info(
            "worker metrics and health on %s:%s",
            settings.worker_metrics_host,
            settings.worker_metrics_port,
        )
    pruner = Pruner(sessions, settings)
    pruner.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "worker polling task queue %s at %s",
        settings.task_queue,
        settings.resolved_temporal_address,
    )
    presence = PresenceReporter(
        sessions,
        registry,
        task_queue=settings.task_queue,
        interval=settings.worker_heartbeat_seconds,
    )
    try:
        async with worker, presence:
            await stop.wait()
    finally:
        await pruner.stop()
        if http is not None:
            await http.stop()
        await close_resources(registry)
        await engine.dispose()
