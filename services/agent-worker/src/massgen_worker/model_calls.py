"""One turn's model calls: streaming them out, retries with backoff, the deadline, usage.

``ModelCalls`` holds what every model call of a turn shares (the request, the model, the
publisher, the usage so far); ``turn._Turn`` builds the turn's phases on it.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeAlias, TypeVar

import structlog
from massgen_kit import tracing
from massgen_proto.events import ANSWER_TOOL, VOTE_TOOL, Chunk, ChunkChannel, TokenUsage
from massgen_proto.function_tools import function_name
from massgen_proto.json_types import JsonObject
from massgen_proto.messages import (
    ModelRetrying,
    PresentationFinished,
    TurnFailed,
    TurnRequest,
    TurnUsage,
    Verdict,
    WorkflowSubmission,
)
from massgen_proto.messages import Usage as UsageSoFar

from .coalesce import Coalescing
from .llm import FatalModelError, Model, ModelError
from .pricing import Price
from .publisher import ChunkPublisher, Emit
from .stream import (
    ArgumentsDelta,
    AssistantMessage,
    ContentDelta,
    FieldDelta,
    StreamAccumulator,
    StreamDelta,
    StreamEvent,
    ToolCallDone,
    Usage,
)
from .stream_ends import StreamEnds
from .wire import Message, Tool

__all__ = [
    "TIMED_OUT",
    "ModelCalls",
    "Report",
    "RetryPolicy",
    "Submit",
    "TurnDeps",
    "TurnError",
]

log = structlog.get_logger("massgen_worker.turn")

Report: TypeAlias = (
    WorkflowSubmission | TurnFailed | PresentationFinished | ModelRetrying | TurnUsage
)
Submit = Callable[[Report], Awaitable[Verdict]]

TIMED_OUT = "turn timed out"

_T = TypeVar("_T")


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


class TurnError(Exception):
    """Ends the turn with a TurnFailed carrying ``str(self)``."""


@dataclass(frozen=True, slots=True)
class TurnDeps:
    """What a turn uses besides its request (see ``turn.run_turn`` for each one)."""

    model: Model
    submit: Submit
    emit: Emit
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    stream_ends: StreamEnds | None = None
    coalescing: Coalescing | None = None
    price: Price | None = None


class ModelCalls:
    """The model calls of one turn, and what they share."""

    def __init__(self, request: TurnRequest, deps: TurnDeps) -> None:
        self.request = request
        self.price = deps.price
        self.usage = UsageSoFar()
        """Tokens and dollars of this turn's model calls so far (sent with each report:
        the orchestrator keeps the run's budget)."""
        self._reported = UsageSoFar()
        """The usage the last report carried."""
        self.model = deps.model
        self.submit = deps.submit
        self.emit = deps.emit
        self.policy = deps.policy
        self.clock = deps.clock
        self.sleep = deps.sleep
        self.stream_ends = deps.stream_ends or StreamEnds()
        self._tails: set[asyncio.Task[None]] = set()
        """This turn's streams being read to their end (see ``StreamEnds``)."""
        self.model_calls = 0
        self.tool_names = {name for tool in request.tools if (name := function_name(tool))}
        self.publisher = ChunkPublisher(
            deps.emit, self._chunk, (deps.coalescing or Coalescing()).batcher()
        )
        # The answer streams decoded from new_answer's arguments (when it is offered).
        self._decode = {ANSWER_TOOL: "content"} if ANSWER_TOOL in self.tool_names else {}

    # -- events ---------------------------------------------------------------------

    def _chunk(self, channel: ChunkChannel, text: str) -> Chunk:
        r = self.request
        return Chunk(
            run_id=r.run_id,
            agent=r.agent_id,
            label=r.label,
            turn_id=r.turn_id,
            channel=channel,
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
                        await publisher.text("tool_args", event.text, key=event.id, name=event.name)
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
        messages: list[Message],
        tools: list[Tool] | None,
        tool_choice: str | None = None,
    ) -> AssistantMessage:
        self.model_calls += 1
        accumulator = StreamAccumulator(self._decode)
        self.publisher.start_response()
        if tools and tool_choice is None:
            tool_choice = "required"
        # The ordinal only from the turn's second call on (most turns make one).
        call = self.model_calls if self.model_calls > 1 else None
        with tracing.span("model.call", model=self.request.backend.model, call=call):
            return await self._read_stream(
                accumulator, self.model.stream(messages, tools, tool_choice)
            )

    async def _read_stream(
        self, accumulator: StreamAccumulator, deltas: AsyncIterator[StreamDelta]
    ) -> AssistantMessage:
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

    def _usage(self) -> UsageSoFar | None:
        """The turn's usage for a report (None before any was counted)."""
        u = self.usage
        if not (u.prompt_tokens or u.completion_tokens or u.cost_usd):
            return None
        self._reported = u
        return u

    async def _report_late_usage(self) -> None:
        """Send the usage that came in after the turn's last report (the last response's
        token count is read after the response was acted on). Best effort: the turn's
        work is done, so a failure here only loses a count."""
        if self.usage == self._reported or self._usage() is None:
            return
        r = self.request
        try:
            await self.submit(
                TurnUsage(run_id=r.run_id, turn_id=r.turn_id, token=r.token, usage=self.usage)
            )
        except Exception as error:  # noqa: BLE001 - see above
            log.warning("turn_usage_unreported", turn=r.turn_id, error=repr(error))

    async def _emit_usage(self, usage: Usage) -> None:
        r = self.request
        cost = self.price(usage.prompt_tokens, usage.completion_tokens) if self.price else 0.0
        self.usage = UsageSoFar(
            prompt_tokens=self.usage.prompt_tokens + usage.prompt_tokens,
            completion_tokens=self.usage.completion_tokens + usage.completion_tokens,
            cost_usd=self.usage.cost_usd + cost,
        )
        await self.publisher.event(
            TokenUsage(
                run_id=r.run_id,
                agent=r.agent_id,
                label=r.label,
                turn_id=r.turn_id,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cost_usd=cost,
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

    async def _within_deadline(self, awaitable: Awaitable[_T]) -> _T:
        remaining = self._remaining()
        if remaining <= 0:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            raise TurnError(TIMED_OUT)
        try:
            async with asyncio.timeout(remaining) as scope:
                return await awaitable
        except TimeoutError:
            if scope.expired():
                raise TurnError(TIMED_OUT) from None
            raise

    async def call_model(
        self,
        messages: list[Message],
        tools: list[Tool] | None,
        tool_choice: str | None = None,
    ) -> AssistantMessage:
        """One model response, retrying retryable provider errors with backoff."""
        failures = 0
        while True:
            try:
                return await self._within_deadline(self._stream_once(messages, tools, tool_choice))
            except FatalModelError as error:
                raise TurnError(f"provider error: {error.message}") from error
            except ModelError as error:
                failures += 1
                if failures > self.policy.retries:
                    raise TurnError(
                        f"provider error after {failures} tries: {error.message}"
                    ) from error
                cap = min(self.policy.max_delay, self.policy.base_delay * 2 ** (failures - 1))
                # Half fixed, half jitter: spreads retries of many agents apart.
                delay = cap / 2 + random.random() * cap / 2
                if delay >= self._remaining():
                    raise TurnError(TIMED_OUT) from error
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


def _vote_text(arguments: JsonObject | str) -> str | None:
    """The ``vote`` chunk of a complete vote call (None when it names no label)."""
    if not isinstance(arguments, dict) or not isinstance(arguments.get("agent_id"), str):
        return None
    reason = arguments.get("reason")
    return json.dumps({"target": arguments["agent_id"], "reason": str(reason or "")})
