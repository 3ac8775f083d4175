"""A scripted driver for the coordination state machine, shared by its tests.

``Driver`` plays worker reports through ``coordination.apply`` with a controlled
clock and remembers every command; ``describe`` turns commands into short strings
so a test can compare a whole transition at once.
"""

from __future__ import annotations

from typing import Any

from massgen_orchestrator.commands import (
    CancelTurnCommand,
    Command,
    EmitEvent,
    PublishTurn,
    ReplyVerdict,
    Tick,
)
from massgen_orchestrator.coordination import apply, new_run, turn_token
from massgen_orchestrator.state import RunState
from massgen_proto.config import RunConfig, parse_config
from massgen_proto.messages import (
    CancelRun,
    ChatMessage,
    ModelRetrying,
    PresentationFinished,
    TurnFailed,
    TurnRequest,
    TurnStarted,
    Verdict,
    WorkflowCall,
    WorkflowSubmission,
)

START = 1000.0
RUN = "r1"
SECRET = "test-secret"
IDS = ("alpha", "beta", "gamma", "delta")


def make_config(
    agents: int = 3,
    *,
    timeout: float = 300,
    turn_timeout: float = 60,
    **orchestrator: Any,
) -> RunConfig:
    """A config of ``agents`` OpenAI agents with ids alpha, beta, ... and the given settings."""
    return parse_config(
        {
            "agents": [
                {
                    "id": IDS[i] if i < len(IDS) else f"agent-{i}",
                    "backend": {"type": "openai", "model": f"gpt-test-{i}", "top_p": 0.9},
                    "system_message": "Answer briefly." if i == 0 else None,
                }
                for i in range(agents)
            ],
            "orchestrator": orchestrator,
            "timeout_settings": {
                "orchestrator_timeout_seconds": timeout,
                "turn_timeout_seconds": turn_timeout,
            },
        }
    )


def describe(command: Command) -> str:
    """One short line per command: ``publish agent1``, ``vote_accepted agent2``, ..."""
    match command:
        case PublishTurn(request=request):
            verb = "present" if request.phase == "present" else "publish"
            return f"{verb} {request.label}"
        case CancelTurnCommand(cancel=cancel):
            return f"cancel {cancel.turn_id.removeprefix(RUN + '-')}"
        case EmitEvent(event=event):
            label = getattr(event, "label", None)
            return f"{event.kind} {label}" if label else event.kind
        case ReplyVerdict(verdict=verdict):
            return f"verdict {verdict.status}"
    raise AssertionError(command)


def kinds(commands: list[Command]) -> list[str]:
    return [describe(c) for c in commands]


def events(commands: list[Command]) -> list[Any]:
    return [c.event for c in commands if isinstance(c, EmitEvent)]


def verdict_of(commands: list[Command]) -> Verdict:
    """The verdict of a report's transition (always the last command, and the only one)."""
    replies = [c for c in commands if isinstance(c, ReplyVerdict)]
    assert len(replies) == 1 and commands[-1] is replies[0], kinds(commands)
    return replies[0].verdict


def answer(content: str) -> WorkflowCall:
    return WorkflowCall(name="new_answer", arguments={"content": content})


def vote(target: str, reason: str = "it is right") -> WorkflowCall:
    return WorkflowCall(name="vote", arguments={"agent_id": target, "reason": reason})


class Driver:
    """Plays one run through ``new_run``/``apply`` with a controlled clock.

    With ``autostart`` (the default) every published turn is taken by a worker at once
    (a TurnStarted is applied silently: it is in ``log`` but not in ``last``), as when
    workers are idle; without it turns stay queued until ``start``.
    """

    def __init__(
        self,
        config: RunConfig | None = None,
        *,
        question: str = "What is the capital of France?",
        history: list[ChatMessage] | None = None,
        now: float = START,
        autostart: bool = True,
    ) -> None:
        self.now = now
        self.autostart = autostart
        self.state, self.last = new_run(
            RUN, question, config or make_config(), list(history or []), now, SECRET
        )
        self.log: list[Command] = list(self.last)
        self._start_published(self.last)

    def token(self, turn_id: str) -> str:
        """The capability a worker holding ``turn_id`` carries."""
        return turn_token(SECRET, turn_id)

    def _start_published(self, commands: list[Command]) -> None:
        if not self.autostart:
            return
        for command in commands:
            if not isinstance(command, PublishTurn):
                continue
            turn_id = command.request.turn_id
            report = TurnStarted(
                run_id=RUN, turn_id=turn_id, worker="w1", token=self.token(turn_id)
            )
            self.state, started = apply(self.state, report, self.now)
            self.log += started

    # -- plumbing ---------------------------------------------------------------------

    def send(self, message: Any, dt: float = 0.0) -> list[Command]:
        self.now += dt
        before = self.state.model_dump_json()
        state, commands = apply(self.state, message, self.now)
        assert self.state.model_dump_json() == before, "apply mutated its input"
        self.state: RunState = state
        self.last = commands
        self.log += commands
        self._start_published(commands)
        return commands

    def requests(self, label: str | None = None) -> list[TurnRequest]:
        """Every turn request published so far (for ``label``), oldest first."""
        return [
            c.request
            for c in self.log
            if isinstance(c, PublishTurn) and (label is None or c.request.label == label)
        ]

    def turn(self, label: str) -> TurnRequest:
        """The latest turn request published for ``label``."""
        return self.requests(label)[-1]

    def turn_id(self, label: str) -> str:
        """The agent's current turn id (from the state), else its last published one."""
        agent = self.state.by_label(label)
        if agent is not None and agent.turn is not None:
            return agent.turn.turn_id
        return self.turn(label).turn_id

    # -- worker reports -----------------------------------------------------------------

    def start(self, label: str, worker: str = "w1", delivery: int = 1, **kw: Any) -> list[Command]:
        turn_id = kw.pop("turn_id", None) or self.turn_id(label)
        token = kw.pop("token", None) or self.token(turn_id)
        return self.send(
            TurnStarted(run_id=RUN, turn_id=turn_id, worker=worker, delivery=delivery, token=token),
            **kw,
        )

    def submit(
        self, label: str, calls: list[WorkflowCall], attempt: int = 1, **kw: Any
    ) -> list[Command]:
        turn_id = kw.pop("turn_id", None) or self.turn_id(label)
        token = kw.pop("token", None) or self.token(turn_id)
        report = WorkflowSubmission(
            run_id=RUN, turn_id=turn_id, attempt=attempt, calls=calls, token=token,
            usage=kw.pop("usage", None),
        )  # fmt: skip
        return self.send(report, **kw)

    def answer(self, label: str, content: str, **kw: Any) -> list[Command]:
        return self.submit(label, [answer(content)], **kw)

    def vote(
        self, label: str, target: str, reason: str = "it is right", **kw: Any
    ) -> list[Command]:
        return self.submit(label, [vote(target, reason)], **kw)

    def fail(self, label: str, error: str = "provider error 500", **kw: Any) -> list[Command]:
        turn_id = kw.pop("turn_id", None) or self.turn_id(label)
        token = self.token(turn_id)
        report = TurnFailed(
            run_id=RUN, turn_id=turn_id, error=error, token=token, usage=kw.pop("usage", None)
        )
        return self.send(report, **kw)

    def retrying(
        self, label: str, error: str = "HTTP 500: upstream down", status: int = 500, **kw: Any
    ) -> list[Command]:
        turn_id = kw.pop("turn_id", None) or self.turn_id(label)
        report = ModelRetrying(
            run_id=RUN, turn_id=turn_id, token=self.token(turn_id), error=error, status=status,
            rate_limited=status == 429,
        )  # fmt: skip
        return self.send(report, **kw)

    def present(self, label: str, content: str, **kw: Any) -> list[Command]:
        turn_id = kw.pop("turn_id", None) or self.turn_id(label)
        token = self.token(turn_id)
        report = PresentationFinished(
            run_id=RUN, turn_id=turn_id, content=content, token=token, check=kw.pop("check", None)
        )
        return self.send(report, **kw)

    def tick(self, dt: float = 0.0) -> list[Command]:
        return self.send(Tick(), dt)

    def cancel(self, reason: str = "user pressed ctrl-c") -> list[Command]:
        return self.send(CancelRun(run_id=RUN, reason=reason))

    def play(self, script: list[tuple[str, str, str]]) -> list[Command]:
        """Play ``(label, "answer"|"vote", content_or_target)`` steps; returns all commands."""
        played: list[Command] = []
        for label, action, value in script:
            if action == "answer":
                played += self.answer(label, value)
            elif action == "vote":
                played += self.vote(label, value)
            else:
                raise ValueError(f"unknown action {action!r} in script step for {label}")
        return played
