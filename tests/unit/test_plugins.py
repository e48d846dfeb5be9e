"""Action plugins: the declaration, loading (entry points, TEMPOFLOW_ACTION_MODULES) and
refusing to start when one fails."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from pydantic import BaseModel

from activities.builtin import default_registry
from activities.plugins import ENTRY_POINT_GROUP, PluginError, load_plugins, module_names
from activities.registry import ActionRegistry, ActionSpec
from tempoflow.definition.model import RetryPolicy, Timeouts

ROOT = Path(__file__).resolve().parents[2]

PLUGIN = """
from pydantic import BaseModel

class In(BaseModel):
    n: int

class Out(BaseModel):
    n: int

async def double(data, ctx):
    return Out(n=data.n * 2)

def register(registry):
    registry.action("{name}", input_model=In, output_model=Out)(double)

def other(registry):
    registry.action("{name}.other", input_model=In, output_model=Out)(double)
"""


def write_module(where: Path, module: str, body: str) -> None:
    (where / f"{module}.py").write_text(textwrap.dedent(body))


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


class Empty(BaseModel):
    pass


async def nothing(data: Empty, ctx: object) -> Empty:
    return Empty()


def test_builtins_declare_no_side_effects() -> None:
    registry = default_registry()
    for name in ("core.noop", "core.log"):
        spec = registry.get(name)
        assert spec is not None and spec.side_effects is False
        assert spec.describe()["sideEffects"] is False


def test_action_keyword_arguments_declare_everything() -> None:
    registry = ActionRegistry()
    registry.action(
        "acme.pay",
        input_model=Empty,
        output_model=Empty,
        version=3,
        description="pays",
        retry=RetryPolicy(maxAttempts=7),
        timeouts=Timeouts(heartbeat=timedelta(seconds=5)),
        publish_roles=["admin"],
    )(nothing)
    spec = registry.get("acme.pay")
    assert spec is not None
    described = spec.describe()
    assert described["version"] == 3 and described["sideEffects"] is True
    assert described["retry"]["maxAttempts"] == 7
    assert described["timeouts"]["heartbeat"] == "PT5S"
    assert described["publishRoles"] == ["admin"]
    # Only the fields the action writes are pinned (others fall through).
    assert spec.declared_defaults() == {
        "retry": {"maxAttempts": 7},
        "timeouts": {"heartbeat": "PT5S"},
    }
    assert not spec.may_publish(frozenset({"publisher"}))
    assert spec.may_publish(frozenset({"admin"}))
    # The positional order of the original fields still holds; side_effects follows.
    positional = ActionSpec("acme.x", 1, Empty, Empty, nothing, "d", False)
    assert positional.side_effects is False and positional.declared_defaults() == {}


@pytest.mark.parametrize("name", ["Pay", "nodot", "acme.", "acme..x"])
def test_action_names_are_checked_at_declaration(name: str) -> None:
    with pytest.raises(ValueError, match="dotted lowercase"):
        ActionSpec(name, 1, Empty, Empty, nothing)


def test_modules_setting(plugin_dir: Path) -> None:
    write_module(plugin_dir, "tf_plugin_a", PLUGIN.format(name="plug.a"))
    assert module_names(" tf_plugin_a , ,tf_plugin_a:other ") == [
        "tf_plugin_a",
        "tf_plugin_a:other",
    ]
    loaded = load_plugins("tf_plugin_a, tf_plugin_a:other")
    names = loaded.registry.names()
    assert {"core.noop", "core.log", "plug.a", "plug.a.other"} <= set(names)
    assert loaded.sources["plug.a"] == "module 'tf_plugin_a'"
    assert "plug.a@1 (module 'tf_plugin_a')" in loaded.summary()


def test_entry_points_are_discovered(plugin_dir: Path) -> None:
    """A distribution on sys.path declaring an entry point in ``tempoflow.actions``."""
    write_module(plugin_dir, "tf_plugin_ep", PLUGIN.format(name="plug.ep"))
    info = plugin_dir / "tf_plugin_ep-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tf-plugin-ep\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nep = tf_plugin_ep:register\n")
    loaded = load_plugins()
    assert "plug.ep" in loaded.registry.names()
    assert loaded.sources["plug.ep"] == "entry point 'ep' (tf_plugin_ep:register)"
    # Named again in the setting: registered once, not a duplicate.
    assert "plug.ep" in load_plugins("tf_plugin_ep").registry.names()


def test_the_installed_example_plugin_is_found_by_its_entry_point() -> None:
    """`make` installs examples/plugin/tempoflow-example-plugin into the venv."""
    names = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert "example" in names, "run `make .venv/.installed` (it installs the example plugin)"
    registry = load_plugins().registry
    assert {"example.greet", "example.record"} <= set(registry.names())


@pytest.mark.parametrize(
    ("setting", "body", "reason"),
    [
        ("tf_missing_plugin", None, "ModuleNotFoundError: No module named 'tf_missing_plugin'"),
        ("tf_plugin_broken", "import tf_not_there\n", "ModuleNotFoundError"),
        ("tf_plugin_noreg", "X = 1\n", "has no attribute 'register'"),
        ("tf_plugin_raises", "def register(r):\n    raise RuntimeError('no key')\n", "no key"),
        ("tf_plugin_dup", PLUGIN.format(name="core.noop"), "already registered"),
        ("tf_plugin_attr:nope", PLUGIN.format(name="p.q"), "AttributeError"),
        ("tf_plugin_value:X", "X = 1\n", "it exposes no callable register(registry)"),
    ],
)
def test_a_failing_plugin_is_named(
    plugin_dir: Path, setting: str, body: str | None, reason: str
) -> None:
    module = setting.split(":")[0]
    if body is not None:
        write_module(plugin_dir, module, body)
    with pytest.raises(PluginError) as err:
        load_plugins(setting)
    assert err.value.plugin == f"module {setting!r}"
    assert reason in err.value.reason
    assert f"module {setting!r}" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("command", ["worker", "api", "dev"])
def test_worker_api_and_dev_refuse_to_start_with_a_broken_plugin(
    tmp_path: Path, command: str
) -> None:
    (tmp_path / "tf_plugin_bad.py").write_text("raise ImportError('needs libfoo')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPOFLOW_")}
    env.update(
        TEMPOFLOW_HOME=str(tmp_path / "home"),
        TEMPOFLOW_ACTION_MODULES="tf_plugin_bad",
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]),
    )
    done = subprocess.run(
        [sys.executable, "-m", "launcher.cli", command],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"tempoflow {command}: action plugin module 'tf_plugin_bad' failed to load: "
        "ImportError: needs libfoo; not starting"
    )
