"""Run events built directly (no services): a scripted run with restarts and a tie.

For display, coordination-table and ``massgen runs`` tests: every event kind a run
can produce, with fixed times (``t0`` + offsets) so renderings are stable.
"""

from __future__ import annotations

from massgen_proto import events as ev

__all__ = ["T0", "restarts_and_tie"]

T0 = 1_700_000_000.0
RUN = "run-tie-1"


def _who(n: int) -> dict[str, str]:
    return {"agent": f"a{n}", "label": f"agent{n}"}


def restarts_and_tie() -> list[ev.RunEvent]:
    """Three agents: two answers, a restart, a rejected vote, an error, then a 1-1-1 tie."""
    at = iter(x * 0.5 for x in range(1, 200))

    def t() -> float:
        return T0 + next(at)

    out: list[ev.RunEvent] = [
        ev.RunCreated(
            run_id=RUN,
            ts=T0,
            question="What is the capital of Australia?",
            agents=[
                ev.AgentInfo(
                    id=f"a{n}", label=f"agent{n}", provider="chatcompletion", model=f"m{n}"
                )
                for n in (1, 2, 3)
            ],
            deadline=T0 + 600,
        ),  # fmt: skip
    ]
    for n in (1, 2, 3):
        out.append(
            ev.TurnStarted(
                run_id=RUN, ts=t(), turn_id=f"t{n}1", phase="coordinate", number=1, **_who(n)
            )  # fmt: skip
        )
    out += [
        ev.Chunk(
            run_id=RUN, ts=t(), turn_id="t11", channel="content", text="Canberra is ", **_who(1)
        ),  # fmt: skip
        ev.Chunk(
            run_id=RUN, ts=t(), turn_id="t11", channel="content", text="the capital.", **_who(1)
        ),  # fmt: skip
        ev.TokenUsage(
            run_id=RUN, ts=t(), turn_id="t11", prompt_tokens=40, completion_tokens=12, **_who(1)
        ),  # fmt: skip
        ev.AnswerAccepted(
            run_id=RUN, ts=t(), version="agent1.1", content="Canberra is the capital.", **_who(1)
        ),  # fmt: skip
        ev.AgentError(
            run_id=RUN,
            ts=t(),
            turn_id="t31",
            error="HTTP 500 upstream exploded",
            failures=1,
            retry_in=0.5,
            **_who(3),
        ),  # fmt: skip
        ev.AnswerAccepted(
            run_id=RUN,
            ts=t(),
            version="agent2.1",
            content="The capital of Australia is Canberra, a planned city.",
            **_who(2),
        ),  # fmt: skip
        ev.Restart(run_id=RUN, ts=t(), reason="new answer agent2.1", **_who(1)),
        ev.TurnStarted(
            run_id=RUN, ts=t(), turn_id="t12", phase="coordinate", number=2, **_who(1)
        ),  # fmt: skip
        ev.TurnStarted(
            run_id=RUN, ts=t(), turn_id="t32", phase="coordinate", number=2, **_who(3)
        ),  # fmt: skip
        ev.WorkflowRejected(
            run_id=RUN,
            ts=t(),
            turn_id="t32",
            tool="vote",
            error="agent9 has no answer; vote for agent1 or agent2",
            **_who(3),
        ),  # fmt: skip
        ev.AnswerAccepted(
            run_id=RUN,
            ts=t(),
            version="agent3.1",
            content="Canberra (ACT) is Australia's capital.",
            **_who(3),
        ),  # fmt: skip
        ev.VoteDiscarded(
            run_id=RUN,
            ts=t(),
            target="agent2",
            reason="the answers changed while it worked",
            **_who(1),
        ),  # fmt: skip
        ev.Restart(run_id=RUN, ts=t(), reason="new answer agent3.1", **_who(1)),
        ev.Restart(
            run_id=RUN, ts=t(), reason="new answer agent3.1", interrupted=True, **_who(2)
        ),  # fmt: skip
        ev.VoteAccepted(
            run_id=RUN, ts=t(), target="agent2", target_agent="a2", reason="cites why", **_who(1)
        ),  # fmt: skip
        ev.VoteAccepted(
            run_id=RUN,
            ts=t(),
            target="agent3",
            target_agent="a3",
            reason="names the territory",
            **_who(2),
        ),  # fmt: skip
        ev.VoteAccepted(
            run_id=RUN, ts=t(), target="agent1", target_agent="a1", reason="shortest", **_who(3)
        ),  # fmt: skip
        ev.Consensus(
            run_id=RUN,
            ts=t(),
            winner="a1",
            winner_label="agent1",
            votes={"agent1": 1, "agent2": 1, "agent3": 1},
        ),  # fmt: skip
        ev.PresentationStarted(run_id=RUN, ts=t(), **_who(1)),
        ev.TurnStarted(run_id=RUN, ts=t(), turn_id="t1p", phase="present", number=3, **_who(1)),
        ev.Chunk(
            run_id=RUN,
            ts=t(),
            turn_id="t1p",
            channel="content",
            text="**Canberra** is the capital.",
            **_who(1),
        ),  # fmt: skip
        ev.FinalAnswer(run_id=RUN, ts=t(), content="**Canberra** is the capital.", **_who(1)),
        ev.RunFinished(run_id=RUN, ts=t(), status="completed", winner="a1"),
    ]
    return out


def failed_agent_events() -> list[ev.RunEvent]:
    """A shorter run where one agent fails for good and the deadline passes."""
    out = restarts_and_tie()[:4]
    out += [
        ev.AgentFailed(run_id=RUN, ts=T0 + 3, error="gave up after 3 failures", **_who(3)),
        ev.DeadlineReached(run_id=RUN, ts=T0 + 4, answers=0),
        ev.RunFinished(run_id=RUN, ts=T0 + 5, status="timed_out", message="no answers"),
    ]
    return out
