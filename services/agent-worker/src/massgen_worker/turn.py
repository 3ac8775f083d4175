"""Execute one turn request: call the model, stream its output, submit, retry on rejection.

Independent of NATS: the service hands in ``submit`` (report → verdict from the
orchestrator) and ``emit`` (publish a run event). The orchestrator is the single
authority on workflow calls, so every model response that is not answered with tool
results ends in exactly one submission, even one without any workflow call (the
orchestrator answers with the reminder, which the model then reads).

The tool loop: a response holding only non-workflow tool calls (MCP tools through the
gateway) is answered with their results and the model is called again, for as long as
the turn's tool budget (``TurnRequest.max_tool_calls``, all attempts together) and its
deadline allow. Agents doing real file work make one tool call per response, so the
bound is on tool calls, not on model calls. Once the budget is spent the model is
offered only the workflow tools and told to end the turn.

Answers as text: a ``new_answer`` whose ``content`` is empty, missing or a placeholder
("see above") submits the text the model wrote before the call (``workflow_calls``).
Agents may write their answer as plain text and commit it with a short call, as in
MassGen; the local model's required calls always work this way (text first, then a
grammar-constrained call without the answer), while hosted models may still put the
answer in the call.

Streaming: content, reasoning and tool calls are published as the model generates
them. The answer of a ``new_answer`` call streams decoded on the ``answer`` channel, a
``vote`` call is a ``vote`` chunk once complete, other calls stream their arguments on
``tool_args``; text goes out in small batches (``coalesce``), the first piece of each
response at once.

Cancellation (``asyncio.CancelledError``) always propagates: the caller decides whether
a cancelled turn is acknowledged (cancel request) or handed back (shutdown).

Where things are: ``model_calls`` (streaming, retries, the deadline, usage),
``publisher`` (events out, text batched), ``stream_ends`` (usage read in the
background), ``tool_messages`` (tool texts the model reads); this module holds the
phases (coordination, presentation, the tool loop) and ``run_turn``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from massgen_proto.events import ANSWER_TOOL
from massgen_proto.function_tools import function_name
from massgen_proto.json_types import JsonValue
from massgen_proto.messages import (
    PresentationFinished,
    TurnFailed,
    TurnRequest,
    WorkflowCall,
    WorkflowSubmission,
)

from .answer_checks import Checker, check_text, checked_calls
from .coalesce import Coalescing
from .llm import Model
from .media import MediaError
from .media_broker import attach_uploads, take_images
from .model_calls import ModelCalls, RetryPolicy, Submit, TurnDeps, TurnError
from .pricing import Price
from .publisher import ChunkPublisher, Emit
from .skills_note import SkillsError, add_skills_note
from .stream import AssistantMessage, ToolCall
from .stream_ends import StreamEnds
from .tool_messages import budget_spent_message, truncate_tool_result, unavailable_tool_message
from .wire import Message, Tool

__all__ = [
    "ChunkPublisher",
    "Emit",
    "RetryPolicy",
    "StreamEnds",
    "Submit",
    "ToolBroker",
    "TurnOutcome",
    "budget_spent_message",
    "run_turn",
    "truncate_tool_result",
    "unavailable_tool_message",
    "workflow_calls",
]

_PLACEHOLDER_WORDS = frozenset(
    "see the my your this that answer text reply response solution code content message "
    "above before previous earlier here is as in same written given complete full final "
    "submitted submit".split()
)
_NOT_WORDS = re.compile(r"[\W_]+")


def _placeholder(content: JsonValue) -> bool:
    """Whether a ``new_answer`` content stands for text written elsewhere: missing,
    empty, or a few words such as "see above" or "<your complete answer>"."""
    if content is None:
        return True
    if not isinstance(content, str):
        return False
    words = _NOT_WORDS.sub(" ", content).casefold().split()
    return len(words) <= 8 and all(word in _PLACEHOLDER_WORDS for word in words)


def workflow_calls(message: AssistantMessage, tool_names: set[str]) -> list[WorkflowCall]:
    """The workflow calls of a response, as submitted to the orchestrator.

    A ``new_answer`` whose ``content`` is missing, empty or a placeholder gets the
    response's text as its content, when the response has text: the answer was written
    as text and the call only commits it. Anything else is submitted as the model wrote
    it (the orchestrator judges it).
    """
    text = message.text.strip()
    calls = []
    for call in message.tool_calls:
        if call.name not in tool_names:
            continue
        arguments = call.arguments
        if call.name == ANSWER_TOOL and text and isinstance(arguments, dict):
            if _placeholder(arguments.get("content")):
                arguments = {**arguments, "content": text}
        calls.append(WorkflowCall(name=call.name, arguments=arguments))
    return calls


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    """How a turn ended (a decision as data: the service acks every one of them)."""

    status: Literal["accepted", "stale", "failed", "presented"]
    attempts: int
    """Workflow submissions made (coordination) or 1 (presentation)."""
    model_calls: int
    error: str | None = None


class ToolBroker(Protocol):
    """The agent's non-workflow tools (MCP tools through the gateway) for one turn."""

    async def list_tools(self) -> list[Tool]:
        """Tools to offer besides the workflow tools, in OpenAI function-tool JSON
        (empty when the agent has none or the gateway cannot be reached)."""
        ...

    async def call(self, call: ToolCall) -> str:
        """Run one tool call; the result, a failure or a denial, as text for the model."""
        ...


class _Turn(ModelCalls):
    """One turn's phases: coordination (with its attempts), presentation, the tool loop."""

    def __init__(
        self,
        request: TurnRequest,
        deps: TurnDeps,
        broker: ToolBroker | None,
        checker: Checker | None = None,
    ) -> None:
        super().__init__(request, deps)
        self.broker = broker
        self.checker = checker if request.examples else None
        self.extra_tools: list[Tool] = []
        self.extra_names: set[str] = set()
        self.attempts = 0
        self.tool_calls_left = request.max_tool_calls
        """Non-workflow tool calls the model may still make in this turn (all attempts)."""

    # -- phases ---------------------------------------------------------------------

    async def present(self) -> TurnOutcome:
        """The winner's final answer: its own tools while the budget lasts, then text.

        The call made once the budget is spent offers no tools at all, so the
        presentation always ends in text.
        """
        messages: list[Message] = [m.model_dump() for m in self.request.messages]
        await self._attach_uploads(messages)
        self.attempts = 1
        while True:
            offered = (self.extra_tools or None) if self.tool_calls_left > 0 else None
            message = await self.call_model(messages, offered, "auto" if offered else None)
            if not message.tool_calls or offered is None:
                break
            await self._answer(messages, message)
        r = self.request
        # This report can finish the run: the usage of every response so far goes first.
        await self.stream_ends.settle(r.run_id, self._remaining())
        check = await self._within_deadline(check_text(self.checker, message.text))
        await self.submit(
            PresentationFinished(
                run_id=r.run_id,
                turn_id=r.turn_id,
                token=r.token,
                content=message.text,
                usage=self._usage(),
                check=check,
            )  # fmt: skip
        )
        return TurnOutcome("presented", 1, self.model_calls)

    async def respond(self, messages: list[Message]) -> AssistantMessage:
        """Call the model until a response must be submitted to the orchestrator.

        That is a response with a workflow call or without any tool call, or any
        response made while only the workflow tools are offered (budget spent: a model
        calling other tools anyway is rejected and reminded, which bounds the loop by
        the turn's attempts). A response holding only other tool calls is answered
        with their results and the model is called again.
        """
        while True:
            own_tools = self.tool_calls_left > 0
            tools = [*self.request.tools, *(self.extra_tools if own_tools else ())] or None
            message = await self.call_model(messages, tools)
            calls = message.tool_calls
            if not calls or not own_tools or any(c.name in self.tool_names for c in calls):
                return message
            await self._answer(messages, message)

    async def _answer(
        self,
        messages: list[Message],
        message: AssistantMessage,
        rejection: str | None = None,
    ) -> None:
        """Append a response, a result for each of its tool calls, then what the model
        must read before its next call.

        Each non-workflow call spends one unit of the turn's tool budget; calls beyond it
        are not run and get a result saying so. After a rejection (``rejection``), the
        orchestrator's message is the result of the workflow call when the response made
        one, otherwise a user message after the tool results: a text-only or tools-only
        response must not leave the model unaware that its turn is still open.
        """
        messages.append(message.to_openai())
        had_budget = self.tool_calls_left > 0
        refused = False
        rejection_read = False
        for call in message.tool_calls:
            if rejection is not None and call.name in self.tool_names:
                text = rejection
                rejection_read = True
            elif self.tool_calls_left > 0:
                self.tool_calls_left -= 1
                text = await self._run_tool(call)
            else:
                text = budget_spent_message(call.name, self.request.max_tool_calls)
                refused = True
            await self._tool_result(messages, call, text)
        if (images := take_images(self.broker)) is not None:
            messages.append(images)  # a tool message holds text only: images follow it
        notes = []
        if rejection is not None and not rejection_read:
            notes.append(rejection)
        if refused or (had_budget and self.tool_calls_left == 0):
            notes.append(self._budget_note())
        if notes:
            messages.append({"role": "user", "content": "\n\n".join(notes)})

    def _budget_note(self) -> str:
        """The user message telling the model its tool budget is spent and how to end."""
        budget = self.request.max_tool_calls
        spent = (
            f"You have used all {budget} tool calls this turn allows."
            if budget
            else "This turn allows no tool calls."
        )
        if self.request.phase == "present":
            return f"{spent} Write your final answer now, as text; no tool is offered any more."
        names = " or ".join(sorted(self.tool_names)) or "a workflow tool"
        return (
            f"{spent} End your turn now with one workflow call ({names}); "
            "no other tool is offered any more."
        )

    async def _run_tool(self, call: ToolCall) -> str:
        """The result text of a non-workflow tool call (through the broker when offered),
        cut to ``max_tool_result_chars``."""
        if self.broker is None or call.name not in self.extra_names:
            return unavailable_tool_message(call.name)
        text = await self._within_deadline(self.broker.call(call))
        return truncate_tool_result(text, self.policy.max_tool_result_chars)

    async def _tool_result(self, messages: list[Message], call: ToolCall, text: str) -> None:
        messages.append({"role": "tool", "tool_call_id": call.id, "content": text})
        payload = json.dumps({"id": call.id, "name": call.name, "content": text})
        await self.publisher.event(self._chunk("tool_result", payload))

    async def coordinate(self) -> TurnOutcome:
        r = self.request
        messages: list[Message] = [m.model_dump() for m in r.messages]
        await self._attach_uploads(messages)
        rejection = ""
        for attempt in range(1, r.max_attempts + 1):
            self.attempts = attempt
            message = await self.respond(messages)
            calls = workflow_calls(message, self.tool_names)
            calls = await self._within_deadline(checked_calls(self.checker, calls))
            verdict = await self.submit(
                WorkflowSubmission(
                    run_id=r.run_id,
                    turn_id=r.turn_id,
                    token=r.token,
                    attempt=attempt,
                    calls=calls,
                    usage=self._usage(),
                )
            )
            if verdict.status == "accepted":
                return TurnOutcome("accepted", attempt, self.model_calls)
            if verdict.status == "stale":
                return TurnOutcome("stale", attempt, self.model_calls)
            rejection = verdict.message or "workflow call rejected"
            if attempt < r.max_attempts:
                # No point running the response's other tool calls for a turn that fails.
                await self._answer(messages, message, rejection)
        raise TurnError(f"no workflow call accepted in {r.max_attempts} attempts: {rejection}")

    async def _attach_uploads(self, messages: list[Message]) -> None:
        """The agent's ``upload_files`` images into the task's user message; an upload
        that cannot be used fails the turn with the gateway's reason. The skills note
        goes in here too, as the turn's messages are made (an unusable skills folder
        fails the turn, naming the key)."""
        try:
            await self._within_deadline(attach_uploads(self.broker, messages))
        except MediaError as error:
            raise TurnError(f"upload_files: {error}") from None
        try:
            add_skills_note(getattr(self.broker, "skills", None), messages)
        except SkillsError as error:
            raise TurnError(str(error)) from None

    async def _load_tools(self) -> None:
        if self.broker is None:
            return
        tools = await self._within_deadline(self.broker.list_tools())
        # A tool may not shadow a workflow tool.
        self.extra_tools = [t for t in tools if function_name(t) not in self.tool_names]
        self.extra_names = {name for t in self.extra_tools if (name := function_name(t))}

    async def run(self) -> TurnOutcome:
        try:
            outcome = await self._run()
        except BaseException:
            await self._settle_tails(cancel=True)
            await self.publisher.close()
            raise
        await self._settle_tails(cancel=False)
        await self.publisher.close()
        await self._report_late_usage()
        return outcome

    async def _run(self) -> TurnOutcome:
        try:
            await self._load_tools()
            if self.request.phase == "present":
                return await self.present()
            return await self.coordinate()
        except TurnError as error:
            r = self.request
            await self.submit(
                TurnFailed(
                    run_id=r.run_id,
                    turn_id=r.turn_id,
                    token=r.token,
                    error=str(error),
                    usage=self._usage(),
                )  # fmt: skip
            )
            return TurnOutcome("failed", self.attempts, self.model_calls, error=str(error))


async def run_turn(
    request: TurnRequest,
    model: Model,
    submit: Submit,
    emit: Emit,
    *,
    policy: RetryPolicy | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    tools: ToolBroker | None = None,
    stream_ends: StreamEnds | None = None,
    coalescing: Coalescing | None = None,
    price: Price | None = None,
    checker: Checker | None = None,
) -> TurnOutcome:
    """Run one turn to its end and report it.

    Args:
        request: the turn to run.
        model: the agent's model (see ``llm.Model``).
        submit: sends a report to the orchestrator and returns its verdict.
        emit: publishes a run event (content/reasoning/tool chunks, token usage).
        policy: provider retries and the tool-result size limit.
        clock: epoch seconds, compared with ``request.deadline``.
        sleep: backoff sleep.
        tools: the agent's MCP tools (listed at the start, offered with the workflow
            tools, called when the model asks); None: workflow tools only.
        stream_ends: the worker's background stream-end reader, shared by its turns
            (None: one for this turn only).
        coalescing: how streamed text is batched into events (None: the defaults,
            50 ms / 256 characters).
        price: dollars of a model call's tokens (None: free).
        checker: runs submitted code against the task's examples when the request
            carries them (None: answers go unchecked).

    Returns:
        The outcome; ``failed`` turns have already been reported with TurnFailed.

    Raises:
        asyncio.CancelledError: the turn was cancelled (never swallowed).
        Exception: whatever ``submit`` or ``emit`` raise (orchestrator unreachable).
    """
    deps = TurnDeps(
        model, submit, emit, policy or RetryPolicy(), clock, sleep, stream_ends, coalescing, price
    )
    return await _Turn(request, deps, tools, checker).run()
