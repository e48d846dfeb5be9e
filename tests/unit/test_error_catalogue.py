"""The run-time error types are one enum, used at every raise site, and the failure
details between the action activity and the workflow are typed on both sides."""

from __future__ import annotations

import re
from pathlib import Path

from temporalio.exceptions import ApplicationError

from tempoflow.error_types import ErrorType
from tempoflow.errors import ErrorItem, Unprocessable
from temporal_workflows.models import ActionFailure, BookkeepingInterrupted
from temporal_workflows.nodes.action_call import _bookkeeping_interrupted, _failure

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "activities", "temporal_workflows", "tempoflow", "projections")
# A string literal where an error type belongs: type="X", StepFailure("X", .type == "X".
LITERAL = re.compile(r"""(type=|StepFailure\(\s*|(\.type|"type", "?"?\))\s*[!=]=\s*)"[A-Z]""")


def test_values_never_change() -> None:
    """Histories, stored run errors and clients' catchOn lists hold these strings."""
    assert {t.value for t in ErrorType} == {
        "ExpressionError",
        "TargetError",
        "TimeoutError",
        "ActionError",
        "ActionNotFound",
        "ActionInputError",
        "ActionOutputError",
        "PayloadTooLarge",
        "HistoryLimitExceeded",
        "ForEachTooLarge",
        "ChildWorkflowFailed",
        "DefinitionNotFound",
        "CorrelationError",
        "WaitRegistrationFailed",
        "DefinitionInvalid",
        "TaskNotOpen",
        "TaskAlreadyCompleted",
        "TaskDataInvalid",
        "BookkeepingUnavailable",
        "DecisionNotPending",
        "DecisionAlreadyMade",
        "SmtpUnavailable",
        "SmtpTransientError",
        "SmtpRejected",
        "SmtpNotConfigured",
        "HttpStatusError",
        "HttpConnectionError",
        "HttpTimeout",
        "HttpResponseTooLarge",
        "HttpTooManyRedirects",
        "HttpUrlInvalid",
        "EgressDenied",
        "WebhookSecretInvalid",
        "SecretNotFound",
        "SecretUnreadable",
        "NotificationInFlight",
        "NotificationRenderError",
        "NotificationInvalid",
        "ChannelNotFound",
    }
    assert all(t == t.value and f"``{t.value}``" in ErrorType.__doc__ for t in ErrorType)


def test_no_error_type_is_a_string_literal() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}"
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        for text in [path.read_text()]
        for match in LITERAL.finditer(text)
    ]
    assert found == []


def test_action_failure_envelope_round_trips() -> None:
    sent = ActionFailure(attempt=3, details={"status": 502})
    cause = ApplicationError("bad gateway", sent.model_dump(mode="json"), type="HttpError")
    failure = _failure(cause, "/steps/0")
    assert (failure.type, failure.attempt, failure.details) == ("HttpError", 3, {"status": 502})
    # Not ours (a plain list of details): passed on as it is, without an attempt.
    other = _failure(ApplicationError("x", "a", "b"), "/steps/0")
    assert (other.type, other.attempt, other.details) == (ErrorType.ACTION_ERROR, None, ["a", "b"])


def test_bookkeeping_envelope_is_read_with_and_without_a_reason() -> None:
    for sent in (
        BookkeepingInterrupted(attempt=2, reason="claimed").model_dump(mode="json"),
        {"attempt": 2},  # recorded before reasons were given (tests/histories)
    ):
        cause = ApplicationError("gave back", sent, type=ErrorType.BOOKKEEPING_UNAVAILABLE)
        assert _bookkeeping_interrupted(cause) == 2
    assert _bookkeeping_interrupted(ApplicationError("x", {"attempt": 2}, type="Other")) is None


def test_error_items_have_one_shape() -> None:
    err = Unprocessable("bad", errors=[{"path": "/a", "code": "c", "message": "m"}])
    assert err.errors == [ErrorItem(path="/a", code="c", message="m")]
    try:
        Unprocessable("bad", errors=[{"path": "/a", "message": "no code"}])
    except ValueError:
        pass
    else:
        raise AssertionError("an error item without a code was accepted")


def test_own_exceptions_share_one_root() -> None:
    from activities.registry import ActionError
    from tempoflow.errors import TempoflowBaseError, TempoflowError
    from temporal_workflows.failures import StepFailure

    for family in (TempoflowError, StepFailure, ActionError):
        assert issubclass(family, TempoflowBaseError)
