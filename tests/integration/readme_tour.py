"""Run the README's five-minute tour literally, in one shell, and check what it says.

The tour's ```sh blocks are the command-line path; ```sh alternative blocks show the
same over plain HTTP (run afterwards, so the main path cannot depend on them). A comment
line ``# {…}`` under a command is a claim about its output: a JSON object whose fields
(recursively; lists element by element) must equal the printed document's. Claims may
name the tour's shell variables (``$RUN``), which the shell expands.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FENCE = re.compile(r"^ *```(sh[^\n]*)\n(.*?)^ *```", re.DOTALL | re.MULTILINE)


@dataclass
class Command:
    text: str
    claims: list[str] = field(default_factory=list)
    output: str = ""
    returncode: int | None = None
    expanded_claims: list[str] = field(default_factory=list)


@dataclass
class Block:
    alternative: bool
    commands: list[Command]


def tour_blocks(readme: Path) -> list[Block]:
    text = readme.read_text()
    start = text.index("## Five-minute tour")
    section = text[start : text.index("\n## ", start + 1)]
    blocks = []
    for info, body in FENCE.findall(section):
        commands: list[Command] = []
        pending = ""
        for raw in body.splitlines():
            line = raw.strip()
            if pending:
                pending += "\n" + line
            elif line.startswith("# {"):
                commands[-1].claims.append(line[2:])
                continue
            elif not line or line.startswith("#"):
                continue
            else:
                pending = line
            if not pending.endswith("\\"):
                commands.append(Command(pending))
                pending = ""
        blocks.append(Block("alternative" in info.split(), commands))
    return blocks


def run_tour(
    blocks: list[Block], *, substitutions: dict[str, str], cwd: Path, env: dict[str, str]
) -> list[Command]:
    """Run the commands in one bash process; fill in each command's output and code."""
    commands = [c for b in blocks for c in b.commands]
    # One pass, so a replacement is never replaced again.
    pattern = re.compile("|".join(map(re.escape, sorted(substitutions, key=len, reverse=True))))
    script = []
    for i, command in enumerate(commands):
        text = pattern.sub(lambda m: substitutions[m.group(0)], command.text)
        script.append(f"printf '\\n@@CMD {i}\\n'\n{text}\nprintf '\\n@@RC {i} %s\\n' $?")
        for claim in command.claims:
            script.append(f"printf '\\n@@CLAIM {i}\\n'\ncat <<__CLAIM__\n{claim}\n__CLAIM__")
    out = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    marker = re.compile(r"^@@(CMD|RC|CLAIM) (\d+)(?: (\d+))?$", re.MULTILINE)
    parts = marker.split(out.stdout)
    for j in range(1, len(parts), 4):
        kind, index, code, body = parts[j], int(parts[j + 1]), parts[j + 2], parts[j + 3]
        if kind == "CMD":
            commands[index].output = body.strip()
        elif kind == "RC":
            commands[index].returncode = int(code)
        else:
            commands[index].expanded_claims.append(body.strip())
    for command in commands:
        assert command.returncode == 0, (command.text, command.output, out.stderr)
        for claim in command.expanded_claims:
            assert_contains(json.loads(command.output), json.loads(claim), command.text)
    return commands


def assert_contains(actual: Any, claim: Any, where: str) -> None:
    """``claim``'s fields equal ``actual``'s (a subset for objects, element-wise for lists)."""
    if isinstance(claim, dict):
        assert isinstance(actual, dict), (where, actual, claim)
        for key, value in claim.items():
            assert key in actual, (where, key, actual)
            assert_contains(actual[key], value, f"{where} .{key}")
    elif isinstance(claim, list):
        assert isinstance(actual, list) and len(actual) == len(claim), (where, actual, claim)
        for a, c in zip(actual, claim, strict=True):
            assert_contains(a, c, where)
    else:
        assert actual == claim, (where, actual, claim)
