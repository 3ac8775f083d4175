"""What a live display shows, folded from a run's events (pure: no I/O, no clock).

Every display (rich panels, plain columns, replay) reads a :class:`RunView`; the
renderers only draw it. Each agent keeps only the tail of its streamed text, so a
long run costs the same to draw as a short one.

What an agent's panel shows as it works: its text, the answer it is writing (streamed
from its ``new_answer`` call, under ``✎ answer:``), ``☑ voted for agent2: reason`` once its
vote call is complete, each tool call and result as one compact line (``→ tool(args)``,
``← tool: result``), denials (``⛔``), then what the orchestrator made of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, assert_never

from massgen_proto import events as ev

__all__ = [
    "TAIL_CHARS",
    "WAIT_NOTICE_SECONDS",
    "AgentView",
    "RunView",
    "tool_call_line",
    "tool_result_line",
    "vote_of",
    "workflow_call",
]

TAIL_CHARS = 4000
"""Characters of streamed text kept per agent (the panel shows the end of it)."""

WAIT_NOTICE_SECONDS = 5.0
"""An agent working this long without output is shown as waiting for its model."""

LINE_CHARS = 100
"""Characters of a tool call's arguments or result shown on its one line."""


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def workflow_call(chunk_text: str) -> bool:
    """True for a tool-call / tool-result chunk of a workflow tool (JSON with ``name``)."""
    value = _json_object(chunk_text)
    return value is not None and value.get("name") in ev.WORKFLOW_TOOLS


def _clip(text: str, limit: int = LINE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tool_call_line(chunk_text: str) -> str | None:
    """``→ tool(args)`` for a ``tool_call`` chunk of a non-workflow tool (else None)."""
    call = _json_object(chunk_text)
    if call is None or call.get("name") in ev.WORKFLOW_TOOLS:
        return None
    arguments = call.get("arguments")
    if isinstance(arguments, dict):
        shown = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in arguments.items())
    else:
        shown = str(arguments or "")
    return f"→ {call.get('name')}({_clip(shown)})"


def tool_result_line(chunk_text: str) -> str | None:
    """``← tool: result`` (``✗`` for an error) for a ``tool_result`` chunk (else None)."""
    result = _json_object(chunk_text)
    if result is None or result.get("name") in ev.WORKFLOW_TOOLS:
        return None
    content = str(result.get("content") or "")
    mark = "✗" if content.startswith("Error") else "←"
    return f"{mark} {result.get('name')}: {_clip(content) or '(empty)'}"


def vote_of(chunk_text: str) -> tuple[str, str] | None:
    """(target label, reason) of a ``vote`` chunk."""
    vote = _json_object(chunk_text)
    if vote is None or not isinstance(vote.get("target"), str):
        return None
    return vote["target"], str(vote.get("reason") or "")


@dataclass(slots=True)
class AgentView:
    """One agent's panel."""

    agent: str
    """Config id."""
    label: str
    provider: str = ""
    model: str = ""
    status: str = "waiting"
    """waiting, working, answered agent2.1, voted for agent1, restarting, failed, ..."""
    state: str = "waiting"
    """Machine-readable status: waiting working answered voted restarting error failed
    presenting winner done."""
    text: str = ""
    """Tail of the streamed output (at most ``TAIL_CHARS``)."""
    appended: int = 0
    """Characters of output ever appended (``text`` keeps only the last of them)."""
    turn: int = 0
    turn_started: float | None = None
    """Event time of the current turn's start (None between turns)."""
    last_output: float | None = None
    """Event time of the latest chunk of the current turn."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    answers: int = 0
    activity: str = ""
    """What the current turn is doing now: ``writing answer``, ``calling <tool>``."""
    writing: str = ""
    """The block the panel is streaming into: ``answer`` or ``""`` (other text)."""
    streamed_answer: bool = False
    """Answer text was streamed in the current turn."""
    shown_vote: bool = False
    """The current turn's vote line is already in the panel."""

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens so far."""
        return self.prompt_tokens + self.completion_tokens

    def busy(self) -> bool:
        """True while a turn of this agent runs."""
        return self.state in ("working", "presenting")

    def waiting_for(self, now: float) -> float | None:
        """Seconds this agent has worked without output, when that is worth showing."""
        if not self.busy() or self.turn_started is None:
            return None
        since = now - (self.last_output or self.turn_started)
        return since if since >= WAIT_NOTICE_SECONDS else None

    def add_text(self, text: str) -> None:
        self.text = (self.text + text)[-TAIL_CHARS:]
        self.appended += len(text)

    def end_block(self) -> None:
        """End the block being streamed (an answer): what follows starts a new line."""
        self.writing = ""
        if self.text and not self.text.endswith("\n"):
            self.add_text("\n")

    def add_line(self, line: str) -> None:
        """Append ``line`` on a line of its own."""
        self.end_block()
        self.add_text(line + "\n")

    def new_turn(self) -> None:
        self.activity = self.writing = ""
        self.streamed_answer = self.shown_vote = False

    def end_turn(self, state: str, status: str) -> None:
        """The current turn ended (answered, voted, failed): nothing runs until the next."""
        self.turn_started = None
        self.state, self.status = state, status
        self.activity = ""


@dataclass(slots=True)
class RunView:
    """Everything a live display draws, updated one event at a time."""

    run_id: str = ""
    question: str = ""
    agents: dict[str, AgentView] = field(default_factory=dict)
    """Label -> agent, in config order."""
    answers: list[str] = field(default_factory=list)
    """Accepted answer versions (``agent2.1``) in order."""
    votes: dict[str, str] = field(default_factory=dict)
    """Voter label -> label voted for (cleared when a new answer is accepted)."""
    vote_count: int = 0
    """Votes accepted over the whole run."""
    restarts: int = 0
    started_at: float | None = None
    last_event_at: float | None = None
    phase: str = "starting"
    """starting, coordinating, presenting, finished."""
    winner_label: str | None = None
    final_answer: str | None = None
    final_fallback: bool = False
    status: str = "running"
    message: str = ""
    events: int = 0
    show_reasoning: bool = False

    def _agent(self, event: ev.RunEvent) -> AgentView:
        label = getattr(event, "label", "")
        view = self.agents.get(label)
        if view is None:  # an event before run_created (a replay cut short): still show it
            view = self.agents[label] = AgentView(agent=getattr(event, "agent", label), label=label)
        return view

    def elapsed(self, now: float) -> float:
        """Seconds since the run started."""
        return max(0.0, now - self.started_at) if self.started_at is not None else 0.0

    def orchestrator_line(self) -> str:
        """Answers and votes so far, in one line."""
        answers = ", ".join(self.answers) or "none yet"
        votes = ", ".join(f"{voter}→{target}" for voter, target in self.votes.items())
        line = f"answers: {answers} | votes: {votes or 'none'}"
        if self.restarts:
            line += f" | restarts: {self.restarts}"
        if self.winner_label:
            line += f" | winner: {self.winner_label}"
        return line

    def apply(self, event: ev.RunEvent) -> None:
        """Fold one event into the view."""
        self.events += 1
        self.last_event_at = event.ts
        match event:
            case ev.RunCreated():
                self._run_created(event)
            case ev.TurnStarted():
                self._turn_started(self._agent(event), event)
            case ev.Chunk():
                self._chunk(self._agent(event), event)
            case ev.TokenUsage():
                agent = self._agent(event)
                agent.prompt_tokens += event.prompt_tokens
                agent.completion_tokens += event.completion_tokens
            case ev.AnswerAccepted():
                self._answer_accepted(self._agent(event), event)
            case ev.WorkflowRejected():
                agent = self._agent(event)
                agent.activity = ""
                agent.add_line(f"✗ {event.tool or 'no tool call'} rejected: {event.error}")
                agent.streamed_answer = agent.shown_vote = False  # the agent tries again
            case ev.VoteAccepted():
                self._vote_accepted(self._agent(event), event)
            case ev.VoteDiscarded():
                self._agent(event).add_line(f"↺ vote for {event.target} discarded: {event.reason}")
            case ev.Restart():
                agent = self._agent(event)
                agent.state, agent.status = "restarting", "restarting"
                agent.turn_started = None
                self.restarts += 1
            case ev.AgentError():
                retry = f", retry in {event.retry_in:.0f}s" if event.retry_in is not None else ""
                self._agent_stopped(
                    event, "error", f"error {event.failures}{retry}", f"! {event.error}"
                )
            case ev.AgentFailed():
                self._agent_stopped(event, "failed", "failed", f"✗ failed: {event.error}")
            case ev.AgentExcluded():
                line = f"✗ left out (provider failing): {event.error}"
                self._agent_stopped(event, "failed", "left out", line)
            case ev.Consensus():
                self.winner_label = event.winner_label
            case ev.DeadlineReached():
                self.message = f"deadline reached with {event.answers} answer(s)"
            case ev.BudgetReached():
                self.message = f"budget reached ({event.limit}) with {event.answers} answer(s)"
            case ev.PresentationStarted():
                self._presentation_started(event)
            case ev.FinalAnswer():
                self._final_answer(self._agent(event), event)
            case ev.ToolDenied():
                self._agent(event).add_line(f"⛔ {event.tool} denied {event.path} ({event.rule})")
            case ev.RunFinished():
                self._run_finished(event)
            case _:
                assert_never(event)

    def _agent_stopped(self, event: ev.RunEvent, state: str, status: str, line: str) -> None:
        """An agent's turn ended without an answer or a vote (an error, a failure)."""
        agent = self._agent(event)
        agent.end_turn(state, status)
        agent.add_line(line)

    def _run_created(self, event: ev.RunCreated) -> None:
        self.run_id = event.run_id
        self.question = event.question
        self.started_at = event.ts
        self.phase = "coordinating"
        for info in event.agents:
            self.agents[info.label] = AgentView(
                agent=info.id, label=info.label, provider=info.provider, model=info.model
            )

    @staticmethod
    def _turn_started(agent: AgentView, event: ev.TurnStarted) -> None:
        agent.turn = event.number
        agent.turn_started = event.ts
        agent.last_output = None
        presenting = event.phase == "present"
        agent.state = "presenting" if presenting else "working"
        agent.status = "presenting" if presenting else f"working (turn {event.number})"
        marker = "final presentation" if presenting else f"turn {event.number}"
        agent.new_turn()
        agent.add_text(f"\n── {marker} ──\n" if agent.text else f"── {marker} ──\n")

    def _answer_accepted(self, agent: AgentView, event: ev.AnswerAccepted) -> None:
        agent.answers += 1
        agent.end_turn("answered", f"answered {event.version}")
        if not agent.streamed_answer:  # a model that did not stream it (or an old log)
            agent.add_line("✎ answer:")
            agent.add_text(event.content.strip() + "\n")
        agent.add_line(f"✓ answer {event.version} accepted")
        if event.check is not None:
            agent.add_line(f"  task's examples: {event.check.summary()}")
        self.answers.append(event.version)
        self.votes.clear()  # votes were for the answers before this one

    def _vote_accepted(self, agent: AgentView, event: ev.VoteAccepted) -> None:
        agent.end_turn("voted", f"voted for {event.target}")
        if not agent.shown_vote:
            same = " (same answer)" if event.same_answer else ""
            agent.add_line(f"☑ voted for {event.target}{same}: {event.reason}")
            agent.shown_vote = True
        self.votes[event.label] = event.target
        self.vote_count += 1

    def _presentation_started(self, event: ev.PresentationStarted) -> None:
        self.phase = "presenting"
        self.winner_label = event.label
        for agent in self.agents.values():
            if agent.label != event.label and agent.state not in ("failed",):
                agent.turn_started = None
                if agent.busy():
                    agent.state, agent.status = "done", "stopped"

    def _final_answer(self, agent: AgentView, event: ev.FinalAnswer) -> None:
        agent.turn_started = None
        agent.state, agent.status = "winner", "winner: final answer"
        self.winner_label = event.label
        self.final_answer = event.content
        self.final_fallback = event.fallback

    def _run_finished(self, event: ev.RunFinished) -> None:
        self.phase = "finished"
        self.status = event.status
        self.message = event.message or self.message
        for agent in self.agents.values():
            agent.turn_started = None
            agent.activity = ""
            if agent.busy():
                agent.state, agent.status = "done", event.status

    def _chunk(self, agent: AgentView, event: ev.Chunk) -> None:
        """Streamed output into the agent's panel (see the module doc)."""
        agent.last_output = event.ts
        match event.channel:
            case "content":
                if agent.writing:
                    agent.end_block()
                agent.activity = "" if agent.activity == "writing answer" else agent.activity
                agent.add_text(event.text)
            case "reasoning":
                if self.show_reasoning:
                    agent.add_text(event.text)
            case "answer":
                if agent.writing != "answer":
                    agent.add_line("✎ answer:")
                    agent.writing = "answer"
                agent.activity = "writing answer"
                agent.streamed_answer = True
                agent.add_text(event.text)
            case "vote":
                vote = vote_of(event.text)
                if vote is not None:
                    agent.add_line(f"☑ voted for {vote[0]}: {vote[1]}")
                    agent.shown_vote = True
                    agent.activity = ""
            case "tool_args":
                call = _json_object(event.text)
                if call is not None and call.get("name"):
                    agent.activity = f"calling {call['name']}"
            case "tool_call":
                line = tool_call_line(event.text)
                if line is not None:
                    agent.add_line(line)
                    agent.activity = f"running {(_json_object(event.text) or {}).get('name')}"
            case "tool_result":
                line = tool_result_line(event.text)
                if line is not None:
                    agent.add_line(line)
                    agent.activity = ""
            case _:
                pass  # a channel this version does not know: skip it
