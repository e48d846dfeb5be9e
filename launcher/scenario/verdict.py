"""Compare a scenario's expectations with what the run did."""

from __future__ import annotations

from typing import Any

from launcher.scenario.compare import MISSING, Difference, diff
from launcher.scenario.doubles import Recorder
from launcher.scenario.model import Expectations, StepExpectation


def actual_steps(recorder: Recorder, run_id: str) -> dict[str, list[dict[str, Any]]]:
    """The root run's step records by step id, in sequence order (the final record of
    each step run; an ``action.call``'s input is what the last attempt was sent)."""
    latest: dict[tuple[int, str | None], Any] = {}
    for record in recorder.steps:
        if record.run_id == run_id:
            latest[(record.seq, record.loop)] = record
    out: dict[str, list[dict[str, Any]]] = {}
    for (_, _), record in sorted(latest.items(), key=lambda kv: kv[0][0]):
        data = record.input
        if data is None:
            sent = [
                c.input
                for c in recorder.calls
                if c.step_path == record.path and c.loop == record.loop
            ]
            data = sent[-1] if sent else None
        out.setdefault(record.step_id, []).append(
            {
                "status": record.status.value,
                "input": data,
                "output": record.output,
                "attempt": record.attempt,
                "error": record.error,
                "loop": record.loop,
            }
        )
    return out


def _step(want: StepExpectation, got: dict[str, Any], path: str) -> list[Difference]:
    out: list[Difference] = []
    for name in sorted(want.model_fields_set):
        expected = getattr(want, name)
        if name == "error" and isinstance(expected, dict) and isinstance(got.get("error"), dict):
            out += diff(expected, got["error"], f"{path}/error", partial=True)
        else:
            out += diff(expected, got.get(name), f"{path}/{name}")
    return out


def check(
    expect: Expectations, outcome: dict[str, Any], recorder: Recorder, run_id: str
) -> list[Difference]:
    """Every difference between ``expect`` and ``outcome``, each at a JSON pointer."""
    given = expect.model_fields_set
    out: list[Difference] = []
    if expect.status is not None:
        out += diff(expect.status, outcome.get("status"), "/status")
        if outcome.get("status") == "FAILED" and expect.status != "FAILED":
            error = outcome.get("error") or {}
            out.append(
                Difference(
                    "/error",
                    None,
                    error,
                    f"the run failed: {error.get('type')}: {error.get('message')} "
                    f"at {error.get('stepPath')}",
                )
            )
    if "output" in given:
        out += diff(expect.output, outcome.get("output", MISSING), "/output")
    if expect.error is not None:
        out += diff(expect.error, outcome.get("error") or {}, "/error", partial=True)
    if expect.variables is not None:
        out += diff(expect.variables, outcome.get("variables") or {}, "/variables", partial=True)
    steps = outcome.get("steps") or {}
    for step_id, want in (expect.steps or {}).items():
        here = f"/steps/{step_id}"
        records = steps.get(step_id, [])
        if want is None:
            if records:
                out.append(Difference(here, None, records, "expected the step not to run"))
            continue
        if isinstance(want, list):
            for index, (w, got) in enumerate(zip(want, records, strict=False)):
                out += _step(w, got, f"{here}/{index}")
            if len(want) != len(records):
                out.append(
                    Difference(
                        here,
                        len(want),
                        len(records),
                        f"expected {len(want)} record(s) of the step, got {len(records)}",
                    )
                )
            continue
        if not records:
            out.append(Difference(here, "a record", MISSING, "the step never ran"))
            continue
        out += _step(want, records[-1], here)
    for action, inputs in (expect.calls or {}).items():
        sent = [c.input for c in recorder.calls if c.action == action]
        out += diff(inputs, sent, f"/calls/{action}")
    if expect.notifications is not None:
        out += _notifications(expect.notifications, recorder)
    return out


def _notifications(want: list[dict[str, Any]], recorder: Recorder) -> list[Difference]:
    """Each expected notification against the one sent at its position (partially)."""
    sent = [
        {"on": n.event, "channel": n.channel, "step": n.step_id, "to": n.to, "template": n.template}
        for n in recorder.notifications
    ]
    out: list[Difference] = []
    for index, (w, got) in enumerate(zip(want, sent, strict=False)):
        out += diff(w, got, f"/notifications/{index}", partial=True)
    if len(want) != len(sent):
        out.append(
            Difference(
                "/notifications",
                len(want),
                len(sent),
                f"expected {len(want)} notification(s), {len(sent)} were sent",
            )
        )
    return out
