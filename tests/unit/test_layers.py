"""The layers hold: the import-linter contracts pass, and the sandbox trusts only pure code."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from launcher.worker import PASSTHROUGH

ROOT = Path(__file__).resolve().parents[2]


def _contracts() -> list[dict]:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        return tomllib.load(fh)["tool"]["importlinter"]["contracts"]


def test_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_layers_name_every_project_package() -> None:
    layers = next(c for c in _contracts() if c["type"] == "layers")["layers"]
    named = {part.strip() for layer in layers for part in layer.split("|")}
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    assert named == packages


def test_sandbox_passes_through_no_package_workflow_code_may_not_import() -> None:
    pure = next(c for c in _contracts() if c["id"] == "pure-workflow")
    assert "temporal_workflows" in PASSTHROUGH
    assert not set(PASSTHROUGH) & set(pure["forbidden_modules"])
