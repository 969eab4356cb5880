"""The Debug Adapter Protocol as Tether speaks it: the framing and the messages' shapes.

Shared by the node's stop storm (tui/node/dapstorm.py, which asks for a stop's stack, scopes and
locals next to the adapter) and the laptop's DAP client (tui/debug), so stdlib only: it is shipped
to the node. Field names are the DAP specification's; only the requests, responses and events
Tether sends or reads are here, and only the fields it uses. Everything is ``total=False``: what
comes from an adapter is read leniently (a missing key gets a default where it is read), so the
types say which keys may be there, not that they are.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TypedDict

HEADER_END = b"\r\n\r\n"


def frame(message: Mapping[str, object]) -> bytes:
    """One DAP message on the wire: a Content-Length header, a blank line, UTF-8 JSON."""
    body = json.dumps(message, separators=(",", ":")).encode("utf-8")
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def content_length(header: bytes) -> int | None:
    """The body's length a DAP header gives (its last Content-Length), or None when it gives none."""
    length = None
    for line in header.decode("ascii", "replace").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            try:
                length = int(value.strip())
            except ValueError:
                length = None
    return length if length is not None and length >= 0 else None


# -- the envelope ------------------------------------------------------------------------------


class ProtocolMessage(TypedDict, total=False):
    seq: int
    type: str  # "request", "response" or "event"


class Request(ProtocolMessage, total=False):
    command: str
    arguments: Mapping[str, object]  # one of the *Arguments below


class Response(ProtocolMessage, total=False):
    request_seq: int
    success: bool
    command: str
    message: str  # a refusal's short reason
    body: Mapping[str, object]  # the command's *ResponseBody, or an ErrorResponseBody


class Event(ProtocolMessage, total=False):
    event: str
    body: Mapping[str, object]  # one of the *EventBody below (the client reads it as EventBody)


# -- shared objects ----------------------------------------------------------------------------


class Source(TypedDict, total=False):
    name: str
    path: str


class Message(TypedDict, total=False):
    format: str  # "{name}" placeholders filled from ``variables``
    variables: Mapping[str, str]


class ErrorResponseBody(TypedDict, total=False):
    error: Message


class PathMapping(TypedDict):
    """debugpy's attach argument (and launch.json's): a laptop folder and the node's copy."""

    localRoot: str
    remoteRoot: str


# -- initialize and attach ---------------------------------------------------------------------


class InitializeRequestArguments(TypedDict, total=False):
    clientID: str
    clientName: str
    adapterID: str
    pathFormat: str
    linesStartAt1: bool
    columnsStartAt1: bool
    supportsVariableType: bool
    supportsVariablePaging: bool
    supportsRunInTerminalRequest: bool


class ExceptionBreakpointsFilter(TypedDict, total=False):
    filter: str
    label: str
    default: bool


class Capabilities(TypedDict, total=False):
    """The initialize response's body."""

    exceptionBreakpointFilters: list[ExceptionBreakpointsFilter]
    supportsConfigurationDoneRequest: bool
    supportsGotoTargetsRequest: bool
    supportsSetExpression: bool
    supportsCompletionsRequest: bool


class AttachRequestArguments(TypedDict, total=False):
    """debugpy's attach; a subprocess's own arguments (its ``debugpyAttach`` event) go with them."""

    name: str
    request: str
    justMyCode: bool
    pathMappings: list[PathMapping]


class DisconnectArguments(TypedDict, total=False):
    terminateDebuggee: bool


# -- breakpoints -------------------------------------------------------------------------------


class SourceBreakpoint(TypedDict, total=False):
    line: int
    condition: str
    hitCondition: str
    logMessage: str


class SetBreakpointsArguments(TypedDict, total=False):
    source: Source
    breakpoints: list[SourceBreakpoint]


class FunctionBreakpoint(TypedDict, total=False):
    name: str


class SetFunctionBreakpointsArguments(TypedDict, total=False):
    breakpoints: list[FunctionBreakpoint]


class SetExceptionBreakpointsArguments(TypedDict, total=False):
    filters: list[str]


class Breakpoint(TypedDict, total=False):
    id: int
    verified: bool
    message: str
    line: int


class SetBreakpointsResponseBody(TypedDict, total=False):
    """Also setFunctionBreakpoints' response."""

    breakpoints: list[Breakpoint]


# -- threads and stacks ------------------------------------------------------------------------


class Thread(TypedDict, total=False):
    id: int
    name: str


class ThreadsResponseBody(TypedDict, total=False):
    threads: list[Thread]


class ThreadArguments(TypedDict, total=False):
    """continue, next, stepIn, stepOut and pause: the spec's arguments of each are this."""

    threadId: int


class StackTraceArguments(TypedDict, total=False):
    threadId: int
    startFrame: int
    levels: int


class StackFrame(TypedDict, total=False):
    id: int
    name: str
    source: Source
    line: int
    column: int


class StackTraceResponseBody(TypedDict, total=False):
    stackFrames: list[StackFrame]
    totalFrames: int


class GotoTargetsArguments(TypedDict, total=False):
    source: Source
    line: int


class GotoTarget(TypedDict, total=False):
    id: int
    label: str
    line: int


class GotoTargetsResponseBody(TypedDict, total=False):
    targets: list[GotoTarget]


class GotoArguments(TypedDict, total=False):
    threadId: int
    targetId: int


# -- variables and expressions -----------------------------------------------------------------


class ScopesArguments(TypedDict, total=False):
    frameId: int


class Scope(TypedDict, total=False):
    name: str
    variablesReference: int
    expensive: bool
    namedVariables: int
    indexedVariables: int


class ScopesResponseBody(TypedDict, total=False):
    scopes: list[Scope]


class VariablesArguments(TypedDict, total=False):
    variablesReference: int
    start: int
    count: int


class Variable(TypedDict, total=False):
    """Also the body of setVariable's and setExpression's responses (a Variable's fields bar the name)."""

    name: str
    value: str
    type: str
    variablesReference: int
    evaluateName: str
    namedVariables: int
    indexedVariables: int


class VariablesResponseBody(TypedDict, total=False):
    variables: list[Variable]


class SetVariableArguments(TypedDict, total=False):
    variablesReference: int
    name: str
    value: str


class SetExpressionArguments(TypedDict, total=False):
    expression: str
    value: str
    frameId: int


class EvaluateArguments(TypedDict, total=False):
    expression: str
    frameId: int
    context: str  # "watch", "repl" or "hover"


class EvaluateResponseBody(TypedDict, total=False):
    result: str
    type: str
    variablesReference: int
    namedVariables: int
    indexedVariables: int


class CompletionsArguments(TypedDict, total=False):
    text: str
    column: int
    frameId: int


class CompletionItem(TypedDict, total=False):
    label: str
    text: str
    type: str


class CompletionsResponseBody(TypedDict, total=False):
    targets: list[CompletionItem]


# -- events ------------------------------------------------------------------------------------


class StoppedEventBody(TypedDict, total=False):
    reason: str
    description: str
    threadId: int
    text: str
    allThreadsStopped: bool


class ContinuedEventBody(TypedDict, total=False):
    threadId: int
    allThreadsContinued: bool


class OutputEventBody(TypedDict, total=False):
    category: str  # "console", "stdout", "stderr", "telemetry" ...
    output: str


class ThreadEventBody(TypedDict, total=False):
    reason: str  # "started" or "exited"
    threadId: int


class ExitedEventBody(TypedDict, total=False):
    exitCode: int


class TetherStopEventBody(TypedDict, total=False):
    """Tether's own event (tui/node/dapstorm.py): a stop's stack, scopes and locals, asked for on
    the node; ``error`` when one of those requests failed (the laptop then asks itself)."""

    threadId: int
    stackTrace: StackTraceResponseBody
    scopes: ScopesResponseBody
    variables: VariablesResponseBody
    error: str


class DebugpyAttachEventBody(TypedDict, total=False):
    """debugpy's event for a subprocess it holds: the attach arguments that reach it (passed on as
    they are, more keys than these included)."""

    subProcessId: int


class EventBody(
    StoppedEventBody,
    ContinuedEventBody,
    OutputEventBody,
    ThreadEventBody,
    ExitedEventBody,
    TetherStopEventBody,
    DebugpyAttachEventBody,
    total=False,
):
    """Any event's body as the client reads it: the events above share no field name with another
    meaning, so one lenient type reads them all; any other event (debugpy's own) passes as it is."""
