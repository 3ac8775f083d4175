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

Streaming: content, reasoning and tool calls are published as the model generates
them. The answer of a ``new_answer`` call streams decoded on the ``answer`` channel, a
``vote`` call is a ``vote`` chunk once complete, other calls stream their arguments on
``tool_args``; text goes out in small batches (``coalesce``), the first piece of each
response at once.

Cancellation (``asyncio.CancelledError``) always propagates: the caller decides whether
a cancelled turn is acknowledged (cancel request) or handed back (shutdown).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from massgen_proto.events import ANSWER_TOOL, VOTE_TOOL, Chunk, TokenUsage
from massgen_proto.messages import (
    ModelRetrying,
    PresentationFinished,
    TurnFailed,
    TurnRequest,
    Verdict,
    WorkflowCall,
    WorkflowSubmission,
)

from .coalesce import Batch, ChunkBatcher, Coalescing
from .llm import FatalModelError, Model, ModelError
from .stream import (
    ArgumentsDelta,
    AssistantMessage,
    ContentDelta,
    FieldDelta,
    StreamAccumulator,
    StreamDelta,
    StreamEvent,
    ToolCall,
    ToolCallDone,
    Usage,
)

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
]

Report = WorkflowSubmission | TurnFailed | PresentationFinished | ModelRetrying
Submit = Callable[[Report], Awaitable[Verdict]]
Emit = Callable[[Chunk | TokenUsage], Awaitable[None]]

TIMED_OUT = "turn timed out"


class StreamEnds:
    """Ends of finished responses' streams, read in the background; one per worker.

    A tool-call response is acted on as soon as the model finishes it. The stream's
    last chunk (token usage) comes only after litellm's end-of-stream bookkeeping,
    ~25 ms of CPU per stream, so it is read ``pause`` seconds later, once the turns the
    call triggers have started. A presentation waits for its run's pending ends
    first, so their usage is published before its report can finish the run.

    Args:
        pause: seconds before a stream's end is read.
    """

    def __init__(self, pause: float = 0.1) -> None:
        self.pause = pause
        self._pending: dict[str, set[asyncio.Task[None]]] = {}

    def read_later(self, run_id: str, reading: Awaitable[None]) -> asyncio.Task[None]:
        """Run ``reading`` (a stream end of run ``run_id``) in the background."""
        task = asyncio.ensure_future(reading)
        pending = self._pending.setdefault(run_id, set())
        pending.add(task)

        def done(_: asyncio.Task[None]) -> None:
            pending.discard(task)
            if not pending and self._pending.get(run_id) is pending:
                del self._pending[run_id]

        task.add_done_callback(done)
        return task

    async def settle(self, run_id: str, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) for the run's stream ends pending now."""
        pending = self._pending.get(run_id)
        if pending and timeout > 0:
            await asyncio.wait(set(pending), timeout=timeout)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a turn retries provider errors and answers non-workflow tool calls."""

    retries: int = 3
    """Retries of a retryable provider error per model call."""
    base_delay: float = 0.5
    """First backoff delay (seconds), doubled per retry, full jitter."""
    max_delay: float = 8.0
    max_tool_result_chars: int = 20_000
    """Characters of one tool result the model reads; the rest is cut, with a note
    (one large file read must not fill the model's context window)."""


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

    async def list_tools(self) -> list[dict[str, Any]]:
        """Tools to offer besides the workflow tools, in OpenAI function-tool JSON
        (empty when the agent has none or the gateway cannot be reached)."""
        ...

    async def call(self, call: ToolCall) -> str:
        """Run one tool call; the result, a failure or a denial, as text for the model."""
        ...


class _TurnError(Exception):
    """Ends the turn with a TurnFailed carrying ``str(self)``."""


def unavailable_tool_message(name: str) -> str:
    """Tool result for a tool the agent was not offered."""
    return f"Error: tool {name!r} is not available. Use only the tools you were offered."


def budget_spent_message(name: str, budget: int) -> str:
    """Tool result for a call made after the turn's tool budget was spent (not run)."""
    return (
        f"Error: {name!r} was not called: this turn's budget of {budget} tool calls "
        "is used up."
    )


def truncate_tool_result(text: str, limit: int) -> str:
    """The first ``limit`` characters of a tool result, plus a note when more were cut.

    The note tells the model how much it did not see and to ask for less, so it can
    narrow the next call instead of trusting a partial result as whole.
    """
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    return (
        f"{text[:limit]}\n[Tool result truncated: the last {cut} of {len(text)} characters "
        "were cut. Ask for less, e.g. read a narrower range or a smaller file.]"
    )


class ChunkPublisher:
    """Publishes one turn's events through ``emit``, in order: streamed text in small
    batches (see ``coalesce.ChunkBatcher``), anything else at once, after the text that
    was pending before it.

    A timer on the event loop lets pending text out at the batcher's deadline, so text
    never waits longer than ``max_delay`` even while the model pauses.

    Args:
        emit: publishes one event.
        make_chunk: builds the turn's chunk event of a channel and text.
        batcher: the batching policy.
    """

    def __init__(
        self, emit: Emit, make_chunk: Callable[[str, str], Chunk], batcher: ChunkBatcher
    ) -> None:
        self._emit = emit
        self._make_chunk = make_chunk
        self.batcher = batcher
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._flushes: set[asyncio.Task[None]] = set()
        self._tool_names: dict[str, str] = {}
        """Call id -> tool name, for ``tool_args`` batches."""

    def start_response(self) -> None:
        """A model response begins: its first piece of text goes out at once."""
        self.batcher.start()

    async def text(
        self, channel: str, text: str, *, key: str | None = None, name: str | None = None
    ) -> None:
        """Streamed text of ``channel`` (``key``/``name``: the tool call, for tool_args)."""
        if key is not None and name is not None:
            self._tool_names[key] = name
        loop = asyncio.get_running_loop()
        async with self._lock:
            await self._send(self.batcher.add(channel, text, loop.time(), key))
        self._arm(loop)

    async def event(self, event: Chunk | TokenUsage) -> None:
        """Any other event: the pending text first, then ``event``."""
        async with self._lock:
            await self._send(self.batcher.flush())
            await self._emit(event)
        self._disarm()

    async def flush(self) -> None:
        """Publish whatever text is pending."""
        async with self._lock:
            await self._send(self.batcher.flush())
        self._disarm()

    async def close(self) -> None:
        """Stop the timer and any flush it started (the turn is over or cancelled)."""
        self._disarm()
        flushes, self._flushes = self._flushes, set()
        for task in flushes:
            task.cancel()
        await asyncio.gather(*flushes, return_exceptions=True)

    async def _send(self, batches: list[Batch]) -> None:
        for batch in batches:
            text = batch.text
            if batch.channel == "tool_args":
                name = self._tool_names.get(batch.key or "", "")
                text = json.dumps({"id": batch.key, "name": name, "delta": text})
            await self._emit(self._make_chunk(batch.channel, text))

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        deadline = self.batcher.deadline()
        if deadline is None:
            self._disarm()
            return
        if self._timer is not None and self._timer_at == deadline:
            return
        self._disarm()
        self._timer_at = deadline
        self._timer = loop.call_at(deadline, self._on_timer)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_at = None

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        task = asyncio.ensure_future(self.flush())
        self._flushes.add(task)
        task.add_done_callback(self._flush_done)

    def _flush_done(self, task: asyncio.Task[None]) -> None:
        self._flushes.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a failed publish surfaces at the next event


class _Turn:
    def __init__(
        self,
        request: TurnRequest,
        model: Model,
        submit: Submit,
        emit: Emit,
        policy: RetryPolicy,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        broker: ToolBroker | None = None,
        stream_ends: StreamEnds | None = None,
        coalescing: Coalescing | None = None,
    ) -> None:
        self.request = request
        self.broker = broker
        self.extra_tools: list[dict[str, Any]] = []
        self.extra_names: set[str] = set()
        self.model = model
        self.submit = submit
        self.emit = emit
        self.policy = policy
        self.clock = clock
        self.sleep = sleep
        self.stream_ends = stream_ends or StreamEnds()
        self._tails: set[asyncio.Task[None]] = set()
        """This turn's streams being read to their end (see ``StreamEnds``)."""
        self.model_calls = 0
        self.attempts = 0
        self.tool_calls_left = request.max_tool_calls
        """Non-workflow tool calls the model may still make in this turn (all attempts)."""
        self.tool_names = {
            name for tool in request.tools if (name := tool.get("function", {}).get("name"))
        }
        self.publisher = ChunkPublisher(emit, self._chunk, (coalescing or Coalescing()).batcher())
        # The answer streams decoded from new_answer's arguments (when it is offered).
        self._decode = {ANSWER_TOOL: "content"} if ANSWER_TOOL in self.tool_names else {}

    # -- events ---------------------------------------------------------------------

    def _chunk(self, channel: str, text: str) -> Chunk:
        r = self.request
        return Chunk(
            run_id=r.run_id,
            agent=r.agent_id,
            label=r.label,
            turn_id=r.turn_id,
            channel=channel,  # type: ignore[arg-type]
            text=text,
        )

    async def _publish(self, events: list[StreamEvent]) -> None:
        publisher = self.publisher
        for event in events:
            match event:
                case ContentDelta():
                    await publisher.text(event.channel, event.text)
                case FieldDelta():
                    await publisher.text("answer", event.text)
                case ArgumentsDelta():
                    if event.name not in self.tool_names:  # a vote shows once complete
                        await publisher.text(
                            "tool_args", event.text, key=event.id, name=event.name
                        )
                case ToolCallDone():
                    call = event.call
                    arguments = call.arguments
                    text = json.dumps({"id": call.id, "name": call.name, "arguments": arguments})
                    await publisher.event(self._chunk("tool_call", text))
                    if call.name == VOTE_TOOL and call.name in self.tool_names:
                        vote = _vote_text(arguments)
                        if vote is not None:
                            await publisher.event(self._chunk("vote", vote))

    # -- model calls ----------------------------------------------------------------

    def _remaining(self) -> float:
        return self.request.deadline - self.clock()

    async def _stream_once(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        tool_choice: str | None = None,
    ) -> AssistantMessage:
        self.model_calls += 1
        accumulator = StreamAccumulator(self._decode)
        self.publisher.start_response()
        if tools and tool_choice is None:
            tool_choice = "required"
        deltas = self.model.stream(messages, tools, tool_choice)
        reading_on = False
        async for delta in deltas:
            await self._publish(accumulator.feed(delta))
            if delta.finish_reason == "tool_calls" and delta.usage is None:
                # The calls are complete: act on them now, read the usage later (see
                # StreamEnds). A text response (a presentation) is read to its end.
                self._tails.add(
                    self.stream_ends.read_later(self.request.run_id, self._read_usage(deltas))
                )
                reading_on = True
                break
        events, message = accumulator.finish()
        await self._publish(events)
        await self.publisher.flush()
        if message.usage is not None and not reading_on:
            await self._emit_usage(message.usage)
        return message

    async def _read_usage(self, deltas: AsyncIterator[StreamDelta]) -> None:
        """Read a stream to its end after its message is complete; emit its usage."""
        usage = None
        try:
            await self.sleep(self.stream_ends.pause)
            async for delta in deltas:
                usage = delta.usage or usage
        except ModelError:
            pass  # the message was complete: only its token count is lost
        finally:
            aclose = getattr(deltas, "aclose", None)
            if aclose is not None:
                await aclose()
        if usage is not None:
            await self._emit_usage(usage)

    async def _emit_usage(self, usage: Usage) -> None:
        r = self.request
        await self.publisher.event(
            TokenUsage(
                run_id=r.run_id,
                agent=r.agent_id,
                label=r.label,
                turn_id=r.turn_id,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
            )
        )

    async def _settle_tails(self, cancel: bool) -> None:
        """Let background stream ends finish (within the deadline), or cancel them."""
        tails, self._tails = self._tails, set()
        if not tails:
            return
        if not cancel:
            _, pending = await asyncio.wait(tails, timeout=max(0.0, self._remaining()))
            tails = pending
        for task in tails:
            task.cancel()
        await asyncio.gather(*tails, return_exceptions=True)

    async def _within_deadline(self, awaitable: Awaitable[Any]) -> Any:
        remaining = self._remaining()
        if remaining <= 0:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            raise _TurnError(TIMED_OUT)
        try:
            async with asyncio.timeout(remaining) as scope:
                return await awaitable
        except TimeoutError:
            if scope.expired():
                raise _TurnError(TIMED_OUT) from None
            raise

    async def call_model(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        tool_choice: str | None = None,
    ) -> AssistantMessage:
        """One model response, retrying retryable provider errors with backoff."""
        failures = 0
        while True:
            try:
                return await self._within_deadline(
                    self._stream_once(messages, tools, tool_choice)
                )
            except FatalModelError as error:
                raise _TurnError(f"provider error: {error.message}") from error
            except ModelError as error:
                failures += 1
                if failures > self.policy.retries:
                    raise _TurnError(
                        f"provider error after {failures} tries: {error.message}"
                    ) from error
                cap = min(self.policy.max_delay, self.policy.base_delay * 2 ** (failures - 1))
                # Half fixed, half jitter: spreads retries of many agents apart.
                delay = cap / 2 + random.random() * cap / 2
                if delay >= self._remaining():
                    raise _TurnError(TIMED_OUT) from error
                if failures == 1:
                    # Tell the orchestrator now, not when the turn fails (retries and
                    # backoff can take a while). Once per model call, not per retry:
                    # it is informational, its verdict is ignored.
                    await self._report_retrying(error)
                await self._within_deadline(self.sleep(delay))

    async def _report_retrying(self, error: ModelError) -> None:
        r = self.request
        await self.submit(
            ModelRetrying(
                run_id=r.run_id,
                turn_id=r.turn_id,
                token=r.token,
                error=error.message,
                status=error.status,
                rate_limited=error.status == 429,
            )
        )

    # -- phases ---------------------------------------------------------------------

    async def present(self) -> TurnOutcome:
        """The winner's final answer: its own tools while the budget lasts, then text.

        The call made once the budget is spent offers no tools at all, so the
        presentation always ends in text.
        """
        messages = [m.model_dump() for m in self.request.messages]
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
        await self.submit(
            PresentationFinished(
                run_id=r.run_id, turn_id=r.turn_id, token=r.token, content=message.text
            )
        )
        return TurnOutcome("presented", 1, self.model_calls)

    async def respond(self, messages: list[dict[str, Any]]) -> AssistantMessage:
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
        messages: list[dict[str, Any]],
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

    async def _tool_result(self, messages: list[dict[str, Any]], call: ToolCall, text: str) -> None:
        messages.append({"role": "tool", "tool_call_id": call.id, "content": text})
        payload = json.dumps({"id": call.id, "name": call.name, "content": text})
        await self.publisher.event(self._chunk("tool_result", payload))

    async def coordinate(self) -> TurnOutcome:
        r = self.request
        messages: list[dict[str, Any]] = [m.model_dump() for m in r.messages]
        rejection = ""
        for attempt in range(1, r.max_attempts + 1):
            self.attempts = attempt
            message = await self.respond(messages)
            calls = [
                WorkflowCall(name=c.name, arguments=c.arguments)
                for c in message.tool_calls
                if c.name in self.tool_names
            ]
            verdict = await self.submit(
                WorkflowSubmission(
                    run_id=r.run_id,
                    turn_id=r.turn_id,
                    token=r.token,
                    attempt=attempt,
                    calls=calls,
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
        raise _TurnError(f"no workflow call accepted in {r.max_attempts} attempts: {rejection}")

    async def _load_tools(self) -> None:
        if self.broker is None:
            return
        tools = await self._within_deadline(self.broker.list_tools())
        # A tool may not shadow a workflow tool.
        self.extra_tools = [
            t for t in tools if t.get("function", {}).get("name") not in self.tool_names
        ]
        self.extra_names = {t["function"]["name"] for t in self.extra_tools}

    async def run(self) -> TurnOutcome:
        try:
            outcome = await self._run()
        except BaseException:
            await self._settle_tails(cancel=True)
            await self.publisher.close()
            raise
        await self._settle_tails(cancel=False)
        await self.publisher.close()
        return outcome

    async def _run(self) -> TurnOutcome:
        try:
            await self._load_tools()
            if self.request.phase == "present":
                return await self.present()
            return await self.coordinate()
        except _TurnError as error:
            r = self.request
            await self.submit(
                TurnFailed(run_id=r.run_id, turn_id=r.turn_id, token=r.token, error=str(error))
            )
            return TurnOutcome("failed", self.attempts, self.model_calls, error=str(error))


def _vote_text(arguments: dict[str, Any] | str) -> str | None:
    """The ``vote`` chunk of a complete vote call (None when it names no label)."""
    if not isinstance(arguments, dict) or not isinstance(arguments.get("agent_id"), str):
        return None
    reason = arguments.get("reason")
    return json.dumps({"target": arguments["agent_id"], "reason": str(reason or "")})


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

    Returns:
        The outcome; ``failed`` turns have already been reported with TurnFailed.

    Raises:
        asyncio.CancelledError: the turn was cancelled (never swallowed).
        Exception: whatever ``submit`` or ``emit`` raise (orchestrator unreachable).
    """
    policy = policy or RetryPolicy()
    turn = _Turn(
        request, model, submit, emit, policy, clock, sleep, tools, stream_ends, coalescing
    )
    return await turn.run()
