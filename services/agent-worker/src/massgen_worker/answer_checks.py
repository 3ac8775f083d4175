"""An answer's code checked against the task's examples, through the gateway.

When a turn request carries the task's examples (``TurnRequest.examples``), the code of
every answer the agent submits, and of the winner's presentation, is run against them
in the gateway's sandbox (``GATEWAY_CHECK``) and the result goes with the submission.
A check that cannot be had (no gateway, no sandbox there, a timeout) leaves the answer
unchecked: it is evidence, never a condition for submitting. A gateway replica that
falls silent mid-check (it died) is asked again once: another replica takes the request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from massgen_kit.keepalive import ResponderSilent, request_with_keepalive
from massgen_proto.code_text import answer_code
from massgen_proto.events import ANSWER_TOOL
from massgen_proto.messages import CodeCheck, TurnRequest, WorkflowCall
from massgen_proto.subjects import GATEWAY_CHECK
from massgen_proto.tools import CheckRequest, CheckResult, GatewayReplyAdapter

if TYPE_CHECKING:
    from nats.aio.client import Client
    from structlog.typing import FilteringBoundLogger

__all__ = ["CHECK_TIMEOUT", "Checker", "GatewayChecker", "check_text", "checked_calls"]

CHECK_TIMEOUT = 20.0
"""Seconds a worker waits for a check (the gateway stops the code after 10)."""


class Checker(Protocol):
    """Runs code against the turn's examples; None when no check could be had."""

    async def check(self, code: str) -> CodeCheck | None: ...


class GatewayChecker:
    """Checks through the mcp-gateway, with the turn's capability."""

    def __init__(
        self, nc: Client, request: TurnRequest, silence: float, tlog: FilteringBoundLogger
    ) -> None:
        self.nc = nc
        self.request = request
        self.silence = silence
        self.log = tlog

    async def check(self, code: str) -> CodeCheck | None:
        import nats.errors

        r = self.request
        ask = CheckRequest(
            run_id=r.run_id, agent_id=r.agent_id, label=r.label, phase=r.phase,
            token=r.token, turn_id=r.turn_id, code=code[:100_000], examples=r.examples,
        )  # fmt: skip
        payload = ask.model_dump_json().encode()
        for attempt in (1, 2):
            try:
                data = await request_with_keepalive(
                    self.nc, GATEWAY_CHECK, payload, CHECK_TIMEOUT, self.silence
                )
                break
            except (nats.errors.NoRespondersError, ResponderSilent, TimeoutError) as error:
                self.log.warning("answer_check_unanswered", error=repr(error), attempt=attempt)
                if attempt == 2 or not isinstance(error, ResponderSilent):
                    return None
        reply = GatewayReplyAdapter.validate_json(data)
        if isinstance(reply, CheckResult):
            return reply.check
        self.log.info("answer_not_checked", why=getattr(reply, "error", reply.kind))
        return None


async def check_text(checker: Checker | None, text: str) -> CodeCheck | None:
    """The check of a text's code (None: no checker, or no code to run)."""
    code = answer_code(text) if checker is not None else ""
    if checker is None or not code:
        return None
    return await checker.check(code)


async def checked_calls(checker: Checker | None, calls: list[WorkflowCall]) -> list[WorkflowCall]:
    """``calls`` with each ``new_answer`` that has code carrying its check."""
    out = []
    for call in calls:
        content = call.arguments.get("content") if isinstance(call.arguments, dict) else None
        if call.name == ANSWER_TOOL and isinstance(content, str):
            found = await check_text(checker, content)
            if found is not None:
                call = call.model_copy(update={"check": found})
        out.append(call)
    return out
