"""Action plugins: the built-ins plus every plugin the installation names.

The contract (docs/actions.md): a plugin is a callable ``register(registry)`` that adds
its actions to the :class:`ActionRegistry` it is given (``registry.action(...)`` or
``registry.add(ActionSpec(...))``). It is found

- through an entry point in the group ``tempoflow.actions`` whose value names the
  callable (``acme = "acme_actions:register"``), or
- through ``TEMPOFLOW_ACTION_MODULES``: comma-separated ``module`` (its ``register``) or
  ``module:callable`` names, for a quick start without packaging.

The API and the worker call :func:`load_registry` with the same settings, so they know
the same actions. A plugin that cannot be imported or fails to register is a
:class:`PluginError` naming it: the process refuses to start rather than run with part
of the set.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.builtin import register_builtins
from activities.registry import ActionRegistry
from tempoflow.settings import Settings

ENTRY_POINT_GROUP = "tempoflow.actions"

log = logging.getLogger("tempoflow.plugins")


class PluginError(Exception):
    """A plugin could not be loaded.

    Attributes:
        plugin: what names it (``entry point 'acme' (acme_actions:register)`` or
            ``module 'acme_actions'``).
        reason: the underlying error, one line.
    """

    def __init__(self, plugin: str, reason: str) -> None:
        super().__init__(f"action plugin {plugin} failed to load: {reason}")
        self.plugin = plugin
        self.reason = reason


@dataclass
class LoadedRegistry:
    """A registry and where its actions came from (for the worker's log)."""

    registry: ActionRegistry
    sources: dict[str, str] = field(default_factory=dict)
    """Action name -> ``builtin`` or the plugin that registered it."""
    called: set[Any] = field(default_factory=set)
    """The ``register`` callables already run (a module that is also an entry point
    registers once)."""

    def summary(self) -> str:
        """``name@version (source)`` for every action, sorted by name."""
        return ", ".join(
            f"{spec.name}@{spec.version} ({self.sources.get(spec.name, '?')})"
            for spec in self.registry.specs()
        )


def _reason(err: BaseException) -> str:
    text = str(err).splitlines()[0] if str(err) else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _resolve(spec: str) -> Callable[[ActionRegistry], Any]:
    """``module`` (its ``register``) or ``module:attr``."""
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name.strip())
    target: Any = module
    for part in (attr or "register").strip().split("."):
        target = getattr(target, part)
    return _callable(target)


def _callable(target: Any) -> Callable[[ActionRegistry], Any]:
    if not callable(target):
        # An entry point may name a module: its ``register``.
        target = getattr(target, "register", None)
    if not callable(target):
        raise TypeError("it exposes no callable register(registry)")
    return target


def _load_entry_point(ep: EntryPoint) -> Callable[[ActionRegistry], Any]:
    return _callable(ep.load())


def _run(
    loaded: LoadedRegistry, source: str, load: Callable[[], Callable[[ActionRegistry], Any]]
) -> None:
    before = set(loaded.registry.names())
    try:
        register = load()
        if register in loaded.called:
            log.info("action plugin %s is loaded already", source)
            return
        loaded.called.add(register)
        register(loaded.registry)
    except Exception as err:
        raise PluginError(source, _reason(err)) from err
    for name in set(loaded.registry.names()) - before:
        loaded.sources[name] = source


def module_names(setting: str | Iterable[str]) -> list[str]:
    """The names in a ``TEMPOFLOW_ACTION_MODULES`` value (comma-separated)."""
    items = setting.split(",") if isinstance(setting, str) else list(setting)
    return [item.strip() for item in items if item.strip()]


def load_plugins(
    modules: str | Iterable[str] = (),
    *,
    group: str = ENTRY_POINT_GROUP,
    settings: Settings | None = None,
    sessions: async_sessionmaker[AsyncSession] | None = None,
) -> LoadedRegistry:
    """The built-in actions, then every entry point of ``group`` (sorted by name), then
    ``modules``; raises :class:`PluginError` naming the first plugin that fails. The
    built-ins get ``settings`` and ``sessions`` (a worker's: tenants' egress rules)."""
    loaded = LoadedRegistry(
        register_builtins(ActionRegistry(), settings=settings, sessions=sessions)
    )
    loaded.sources = dict.fromkeys(loaded.registry.names(), "builtin")
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        _run(loaded, f"entry point {ep.name!r} ({ep.value})", partial(_load_entry_point, ep))
    for name in module_names(modules):
        _run(loaded, f"module {name!r}", partial(_resolve, name))
    return loaded


def load_registry(settings: Settings) -> ActionRegistry:
    """The registry the API and the worker use: built-ins, entry points and
    ``settings.action_modules``."""
    return load_plugins(settings.action_modules, settings=settings).registry
