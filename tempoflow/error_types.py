"""The catalogue of run-time error types: the ``type`` of a failed step (what
``control.tryCatch``'s ``catchOn`` lists, what a run's ``error.type`` shows) and of the
``ApplicationError`` failures that pass between activities, the workflow and the API.

The string values are part of the contract: recorded histories, stored run errors and
clients' ``catchOn`` lists hold them. Never rename one; add new members instead.

"Retryable" is Temporal's activity retry: the failure is retried under the step's
``retry`` policy before the step fails. "Catchable" means a ``tryCatch`` can handle it and
``onItemError``/``onBranchError: continue`` goes on after it; an uncatchable failure still
runs ``finally`` blocks. Besides these, an action may fail with any type of its own
(``ActionError(type, …)`` in ``activities.registry``): retryable unless it says so,
catchable.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorType(StrEnum):
    """Every error type the engine itself raises.

    Step failures (a step fails with this type; catchable unless noted):

    - ``ExpressionError``: an expression failed to evaluate or gave a value of the
      wrong kind (the interpreter: any expression field, ``delay.until``,
      ``action.call.idempotencyKey``); ``details`` has the engine's code and position.
      Not retryable (evaluated in the workflow).
    - ``TargetError``: a variable target could not be assigned (a path through a
      non-object); raised by the interpreter. Not retryable.
    - ``TimeoutError``: an ``action.call`` attempt or schedule timed out after its
      retries, an ``event.wait`` passed its ``timeout`` or a ``human.task`` its ``due``
      (with ``onTimeout: fail``).
    - ``ActionError``: an ``action.call`` failed with no type of its own (a failure
      Temporal reports without a type). An unexpected exception in a handler fails the
      step with its class name (``KeyError``…); both are retried under the step's
      ``retry`` policy first.
    - ``ActionNotFound``: the action is not registered on the worker that ran it
      (``invoke_action`` activity); not retryable.
    - ``ActionInputError``: the resolved input does not match the action's input model
      (``invoke_action``); not retryable; ``details`` lists pydantic's errors.
    - ``ActionOutputError``: the action returned output that does not match its output
      model (``invoke_action``); not retryable.
    - ``PayloadTooLarge``: a value the run would hand to Temporal (an action's input, a
      child's input, an output) is over the run's payload limit (the interpreter). Not
      retryable; uncatchable when it is the run's own output or the state carried
      across continue-as-new.
    - ``HistoryLimitExceeded``: the execution's history outgrew the run's limit and it
      could not continue as new (the interpreter). Not retryable, uncatchable.
    - ``ForEachTooLarge``: a ``control.forEach`` got more items than it allows.
    - ``ChildWorkflowFailed``: the child run of ``control.callWorkflow`` failed;
      ``details.cause`` holds the child's error.
    - ``DefinitionNotFound``: ``control.callWorkflow`` names a definition or version that
      is not published (the ``resolve_definition`` activity, not retryable).
    - ``CorrelationError``: an ``event.wait`` correlation key evaluated to nothing or
      to a value that is not a key (the interpreter).
    - ``SecretNotFound``: an action's input refers (``{"$secret": name}``) to a secret the
      run's tenant does not have, or the reference holds no valid name (the
      ``invoke_action`` activity, before the handler runs); the message and
      ``details.secrets`` name the missing secrets. Not retryable.
    - ``SecretUnreadable``: a referenced secret does not decrypt with the configured keys
      (its key was removed from ``TEMPOFLOW_SECRETS_KEY``, or the stored value was
      altered); ``invoke_action``, not retryable.
    - ``WaitRegistrationFailed``: the ``register_wait`` activity could not index the wait
      (a permanent database error); not retryable.

    Failures of the built-in ``email.send`` action (``activities/email.py``; catchable):

    - ``SmtpUnavailable``: the SMTP server could not be reached or dropped the
      connection (refused, timed out, disconnected). Retryable.
    - ``SmtpTransientError``: the server answered a 4xx reply (try again later, mailbox
      busy, every recipient deferred); ``details`` has ``code`` and ``message``. Retryable.
    - ``SmtpRejected``: the server answered a 5xx reply (authentication failed, sender or
      every recipient refused, message refused) or the connection cannot work as
      configured (no STARTTLS); ``details`` has ``code`` and ``message``. Not retryable.
    - ``SmtpNotConfigured``: no SMTP server in the step's input nor in the worker's
      settings (``TEMPOFLOW_SMTP__HOST``), or no sender. Not retryable.
    Failures of the built-in ``http.request`` and ``webhook.send`` actions
    (``activities/http.py``, ``activities/webhook.py``; all catchable):

    - ``HttpStatusError``: the response status is not one the step accepts. Retryable
      for 5xx and 429 (a ``Retry-After`` sets the delay before the next attempt, capped
      by the step's ``maxInterval``), not retryable for other statuses. ``details`` has
      ``status``, ``headers`` and ``bodyExcerpt`` (the first 1,000 characters).
    - ``HttpConnectionError``: the connection failed (refused, reset, name not resolved,
      protocol error). Retryable.
    - ``HttpTimeout``: connecting, sending or reading took longer than the request's
      ``timeout``. Retryable.
    - ``HttpResponseTooLarge``: the response body is over the request's or the worker's
      cap (``TEMPOFLOW_HTTP_MAX_RESPONSE_BYTES``); reading stopped there. Not retryable.
    - ``HttpTooManyRedirects``: more redirects than the request allows. Not retryable.
    - ``HttpUrlInvalid``: the URL (or a redirect's ``Location``) is malformed. Not
      retryable.
    - ``EgressDenied``: the egress policy refused the URL's scheme or an address its host
      resolves to (``tempoflow/egress.py``); ``details`` name the ``rule``, ``host`` and
      ``address``. Checked again on every redirect. Not retryable.
    - ``WebhookSecretInvalid``: ``webhook.send``'s signing secret is not a Standard
      Webhooks secret (base64, optionally ``whsec_``-prefixed). Not retryable.

    Failures of a notification (the ``tempoflow.notify`` activity; recorded in the delivery
    log, never a step's type: a notification never fails its run):

    - ``NotificationInFlight``: another attempt holds the notification's lease; retried
      after a pause without sending.
    - ``NotificationRenderError``: the policy's ``to`` or ``template`` failed to render in
      the workflow (an expression error, too large); nothing is sent. Not retryable.
    - ``NotificationInvalid``: the rendered message does not fit the channel (its
      template model or the action's input model). Not retryable.
    - ``ChannelNotFound``: the channel is not registered on the worker. Not retryable.

    Failures of a whole run or of a request to it (never a step's type, so never caught):

    - ``DefinitionInvalid``: the run's definition no longer parses (the interpreter,
      before the first step); fails the run.
    - ``TaskNotOpen``, ``TaskAlreadyCompleted``, ``TaskDataInvalid``: the interpreter's
      complete-task update validator refuses a completion (the task is unknown, was
      completed already, or the data does not match the form); the API answers 409, 409
      and 422. The run is not affected.
    - ``DecisionNotPending``, ``DecisionAlreadyMade``: the interpreter's decide update
      validator refuses an operator's decision (no step of that path waits for one, or
      another decision came first); the API answers 409. The run is not affected.
    - ``BookkeepingUnavailable``: the ``invoke_action`` activity gave its attempt back
      before running the handler (database unreachable, or another run's attempt holds
      the idempotency key); details are a :class:`temporal_workflows.models.
      BookkeepingInterrupted`. Not retryable by Temporal: the workflow waits and
      schedules the action again, and the attempt does not count.
    """

    EXPRESSION_ERROR = "ExpressionError"
    TARGET_ERROR = "TargetError"
    TIMEOUT_ERROR = "TimeoutError"
    ACTION_ERROR = "ActionError"
    ACTION_NOT_FOUND = "ActionNotFound"
    ACTION_INPUT_ERROR = "ActionInputError"
    ACTION_OUTPUT_ERROR = "ActionOutputError"
    PAYLOAD_TOO_LARGE = "PayloadTooLarge"
    HISTORY_LIMIT_EXCEEDED = "HistoryLimitExceeded"
    FOR_EACH_TOO_LARGE = "ForEachTooLarge"
    CHILD_WORKFLOW_FAILED = "ChildWorkflowFailed"
    DEFINITION_NOT_FOUND = "DefinitionNotFound"
    CORRELATION_ERROR = "CorrelationError"
    WAIT_REGISTRATION_FAILED = "WaitRegistrationFailed"
    SECRET_NOT_FOUND = "SecretNotFound"
    SECRET_UNREADABLE = "SecretUnreadable"
    DEFINITION_INVALID = "DefinitionInvalid"
    TASK_NOT_OPEN = "TaskNotOpen"
    TASK_ALREADY_COMPLETED = "TaskAlreadyCompleted"
    TASK_DATA_INVALID = "TaskDataInvalid"
    DECISION_NOT_PENDING = "DecisionNotPending"
    DECISION_ALREADY_MADE = "DecisionAlreadyMade"
    BOOKKEEPING_UNAVAILABLE = "BookkeepingUnavailable"
    SMTP_UNAVAILABLE = "SmtpUnavailable"
    SMTP_TRANSIENT_ERROR = "SmtpTransientError"
    SMTP_REJECTED = "SmtpRejected"
    SMTP_NOT_CONFIGURED = "SmtpNotConfigured"
    HTTP_STATUS_ERROR = "HttpStatusError"
    HTTP_CONNECTION_ERROR = "HttpConnectionError"
    HTTP_TIMEOUT = "HttpTimeout"
    HTTP_RESPONSE_TOO_LARGE = "HttpResponseTooLarge"
    HTTP_TOO_MANY_REDIRECTS = "HttpTooManyRedirects"
    HTTP_URL_INVALID = "HttpUrlInvalid"
    EGRESS_DENIED = "EgressDenied"
    WEBHOOK_SECRET_INVALID = "WebhookSecretInvalid"
    NOTIFICATION_IN_FLIGHT = "NotificationInFlight"
    NOTIFICATION_RENDER_ERROR = "NotificationRenderError"
    NOTIFICATION_INVALID = "NotificationInvalid"
    CHANNEL_NOT_FOUND = "ChannelNotFound"
