"""Benchmark: what ``restart_policy: finish`` costs, narrowed vs literal (and ``interrupt``).

A deterministic discrete-event simulation drives the real ``coordination.apply`` with
simulated agents and a simulated clock (no NATS, no processes, no models):

* every published turn is taken by a worker at once (``TurnStarted`` with its token) and
  lasts a lognormal time: a vote ~2 s, an answer ~5 s; an agent writing its *first*
  answer is slower by a factor spread evenly over 1..3 across the agents (staggered first
  answers; the slow agents are shuffled per seed);
* what a turn does is fixed when it starts, from the answer set it shows: no own answer
  yet -> write one; else, while the agent has improvements left, improve with
  probability ``p_improve``; else vote for the answer it rates best (each answer has a
  latent quality; a voter adds gaussian noise to its ratings);
* a ``CancelTurnCommand`` stops the turn; a cancelled answer-writing turn is an
  **answer lost**. A vote answered ``stale`` (a ``VoteDiscarded`` event) is a **vote
  wasted**. The winner presents (~4 s) and the run ends at ``run_finished``.

Rules compared: ``finish`` with ``coordination.FINISH_ANSWERED_TURNS = False`` (the
implementation: only agents without an answer finish their running turn), ``finish``
with it True (PROTOCOL.md's literal rule: every running turn finishes), and
``interrupt`` (every running turn is cancelled at once) for reference. Each seed draws
the same random numbers for an agent's k-th turn under every rule, so the rules are
compared on common random numbers.

Prompt size is counted in words of the turn requests' messages (every published turn,
the presentation included).

    .venv/bin/python bench/bench_restart_policy.py       # prints the Markdown section
"""

from __future__ import annotations

import heapq
import math
import multiprocessing
import os
import random
import resource
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from massgen_orchestrator import coordination
from massgen_orchestrator.commands import (
    CancelTurnCommand,
    Command,
    EmitEvent,
    PublishTurn,
    ReplyVerdict,
)
from massgen_orchestrator.state import RunState
from massgen_proto.config import RunConfig, parse_config
from massgen_proto.messages import (
    PresentationFinished,
    TurnStarted,
    Verdict,
    WorkflowCall,
    WorkflowSubmission,
)

RUN = "sim"
SECRET = "bench-secret"
QUESTION = "Explain how a hash map handles collisions, and when to prefer open addressing."
START = 1_000.0

VOTE_SECONDS = 2.0
"""Median duration of a voting turn."""
ANSWER_SECONDS = 5.0
"""Median duration of an answer-writing turn (first answer: times the agent's stagger)."""
PRESENT_SECONDS = 4.0
SIGMA = 0.4
"""Lognormal shape of every duration."""
STAGGER = 3.0
"""The slowest agent writes its first answer this many times slower than the fastest."""

_VOCABULARY = [
    f"{a}{b}{c}"
    for a in ("ka", "lo", "mi", "ne", "su", "ta", "ro", "vi")
    for b in ("ber", "dan", "gol", "mix", "pra", "sen", "tur", "wol")
    for c in ("", "a", "en", "is", "or", "um")
]


@dataclass(frozen=True)
class Scenario:
    name: str
    agents: int
    p_improve: float
    """Chance that a later turn improves the agent's answer instead of voting."""
    rounds: int
    """Improvements an agent makes at most (answers = 1 + rounds)."""
    noise: float
    """Gaussian noise of a voter's rating of an answer (latent qualities are N(0, 1))."""
    stagger: float | None = None
    """Spread of first-answer durations across the agents (None: ``STAGGER``); 1.0 is a
    team on one model, whose first answers arrive together."""
    retry_lost: bool = True
    """True: the improvement budget counts accepted answers, so an agent whose improvement
    was cancelled may decide to improve again (with ``p_improve``) in a later turn. False:
    it counts decisions to improve, so a cancelled improvement is gone for good."""


SCENARIOS = [
    Scenario(f"{n} agents, {kind}", n, p, r, noise)
    for kind, p, r, noise in (("agreeing", 0.05, 1, 0.3), ("disagreeing", 0.3, 2, 1.0))
    for n in (3, 5, 10)
] + [Scenario("3 agents, one model (first answers together)", 3, 0.05, 1, 0.3, stagger=1.0)]
SENSITIVITY = [
    Scenario(f"{n} agents, disagreeing, lost not retried", n, 0.3, 2, 1.0, retry_lost=False)
    for n in (3, 5, 10)
]


@dataclass(frozen=True)
class Rule:
    name: str
    policy: str
    finish_answered: bool


RULES = [
    Rule("finish, narrowed (default)", "finish", False),
    Rule("finish, literal", "finish", True),
    Rule("interrupt", "interrupt", False),
]


@dataclass
class RunStats:
    """What one simulated run cost."""

    completed: bool = False
    answers_accepted: int = 0
    answers_lost: int = 0
    first_answers_lost: int = 0
    """Of ``answers_lost``, those by an agent that had no answer yet."""
    votes_wasted: int = 0
    turns: int = 0
    """Turns published (= model calls started: every turn is taken at once), presentation
    included."""
    turns_cancelled: int = 0
    prompt_words: int = 0
    consensus_seconds: float = math.nan
    finished_seconds: float = math.nan


@dataclass
class _SimTurn:
    turn_id: str
    label: str
    phase: str
    action: str  # "answer" | "vote" | "present"
    ends_at: float
    started_at: float
    content: str = ""
    target: str = ""
    token: str = ""


@dataclass
class _Sim:
    scenario: Scenario
    seed: int
    config: RunConfig
    state: RunState | None = None
    now: float = START
    seq: int = 0
    queue: list[tuple[float, int, str]] = field(default_factory=list)
    live: dict[str, _SimTurn] = field(default_factory=dict)
    quality: dict[str, float] = field(default_factory=dict)
    """label -> latent quality of its current answer."""
    answered: dict[str, int] = field(default_factory=dict)
    """label -> answers accepted."""
    pending_quality: dict[str, float] = field(default_factory=dict)
    """answer text -> its latent quality, until it is accepted."""
    decided: dict[str, int] = field(default_factory=dict)
    """label -> turns that set out to improve the agent's answer."""
    stagger: dict[str, float] = field(default_factory=dict)
    words: dict[str, int] = field(default_factory=dict)
    """message text -> its word count (prompts repeat while the answer set stands)."""
    stats: RunStats = field(default_factory=RunStats)
    done: bool = False


def _config(agents: int, policy: str) -> RunConfig:
    return parse_config(
        {
            "agents": [
                {"id": f"sim-{i}", "backend": {"type": "openai", "model": "sim"}}
                for i in range(agents)
            ],
            "orchestrator": {"restart_policy": policy},
        }
    )


def _duration(rng: random.Random, median: float) -> float:
    return rng.lognormvariate(math.log(median), SIGMA)


def _text(rng: random.Random, tag: str) -> str:
    words = rng.choices(_VOCABULARY, k=rng.randint(150, 250))
    return f"[{tag}] " + " ".join(words)


@contextmanager
def finish_answered_turns(value: bool) -> Iterator[None]:
    """Set ``coordination.FINISH_ANSWERED_TURNS`` for the block and restore it after."""
    before = coordination.FINISH_ANSWERED_TURNS
    coordination.FINISH_ANSWERED_TURNS = value
    try:
        yield
    finally:
        coordination.FINISH_ANSWERED_TURNS = before


def _plan(sim: _Sim, label: str, turn_id: str, number: int, phase: str) -> _SimTurn:
    """Decide what the agent's ``number``-th turn does and how long it takes."""
    rng = random.Random(f"{sim.seed}/{label}/{number}")
    sc = sim.scenario
    if phase == "present":
        return _SimTurn(
            turn_id, label, phase, "present", sim.now + _duration(rng, PRESENT_SECONDS), sim.now
        )
    seen = dict(sim.quality)
    own = sim.answered.get(label, 0)
    if own == 0:
        median = ANSWER_SECONDS * sim.stagger[label]
        quality = rng.gauss(0.0, 1.0)
        action = "answer"
    elif (
        own <= sc.rounds if sc.retry_lost else sim.decided.get(label, 0) < sc.rounds
    ) and rng.random() < sc.p_improve:
        sim.decided[label] = sim.decided.get(label, 0) + 1
        median = ANSWER_SECONDS
        quality = max(seen.values()) + abs(rng.gauss(0.0, 0.5))
        action = "answer"
    else:
        median = VOTE_SECONDS
        action = "vote"
    turn = _SimTurn(turn_id, label, phase, action, sim.now + _duration(rng, median), sim.now)
    if action == "answer":
        turn.content = _text(rng, f"{label}.{number}")
        sim.pending_quality[turn.content] = quality
    else:
        rated = {lab: q + rng.gauss(0.0, sc.noise) for lab, q in seen.items()}
        turn.target = max(rated, key=lambda lab: rated[lab])
    return turn


def _words(sim: _Sim, text: str) -> int:
    count = sim.words.get(text)
    if count is None:
        count = sim.words[text] = len(text.split())
    return count


def _push(sim: _Sim, at: float, turn_id: str) -> None:
    sim.seq += 1
    heapq.heappush(sim.queue, (at, sim.seq, turn_id))


def _handle(sim: _Sim, commands: list[Command]) -> Verdict | None:
    """Execute the commands of one transition; start the turns it published."""
    verdict = None
    published: list[_SimTurn] = []
    for command in commands:
        match command:
            case PublishTurn(request=request):
                sim.stats.turns += 1
                sim.stats.prompt_words += sum(_words(sim, m.content) for m in request.messages)
                turn = _plan(sim, request.label, request.turn_id, request.number, request.phase)
                sim.live[turn.turn_id] = turn
                published.append(turn)
            case CancelTurnCommand(cancel=cancel):
                turn = sim.live.pop(cancel.turn_id, None)
                if turn is not None:
                    sim.stats.turns_cancelled += 1
                    if turn.action == "answer":
                        sim.stats.answers_lost += 1
                        if not sim.answered.get(turn.label):
                            sim.stats.first_answers_lost += 1
            case EmitEvent(event=event):
                if event.kind == "answer_accepted":
                    sim.stats.answers_accepted += 1
                    sim.answered[event.label] = sim.answered.get(event.label, 0) + 1
                    sim.quality[event.label] = sim.pending_quality.pop(event.content)
                elif event.kind == "vote_discarded":
                    sim.stats.votes_wasted += 1
                elif event.kind == "consensus":
                    sim.stats.consensus_seconds = sim.now - START
                elif event.kind == "run_finished":
                    sim.done = True
                    sim.stats.completed = event.status == "completed"
                    sim.stats.finished_seconds = sim.now - START
            case ReplyVerdict(verdict=reply):
                verdict = reply
    for turn in published:
        if turn.turn_id not in sim.live:
            continue  # cancelled within the same transition
        token = coordination.turn_token(SECRET, turn.turn_id)
        turn.token = token
        report = TurnStarted(run_id=RUN, turn_id=turn.turn_id, worker="w", token=token)
        _step(sim, report)
        _push(sim, turn.ends_at, turn.turn_id)
    return verdict


def _step(sim: _Sim, message: object) -> Verdict | None:
    sim.state, commands = coordination.apply(sim.state, message, sim.now)
    return _handle(sim, commands)


def _submission(sim: _Sim, turn: _SimTurn) -> object:
    token = turn.token
    if turn.action == "present":
        return PresentationFinished(
            run_id=RUN, turn_id=turn.turn_id, token=token, content="final answer"
        )
    if turn.action == "answer":
        call = WorkflowCall(name="new_answer", arguments={"content": turn.content})
    else:
        call = WorkflowCall(name="vote", arguments={"agent_id": turn.target, "reason": "best"})
    return WorkflowSubmission(
        run_id=RUN, turn_id=turn.turn_id, token=token, attempt=1, calls=[call]
    )


def simulate(scenario: Scenario, rule: Rule, seed: int) -> RunStats:
    """Play one run of ``scenario`` under ``rule``; deterministic in ``seed``."""
    sim = _Sim(scenario=scenario, seed=seed, config=_config(scenario.agents, rule.policy))
    labels = [f"agent{i + 1}" for i in range(scenario.agents)]
    spread = STAGGER if scenario.stagger is None else scenario.stagger
    factors = [
        1.0 + (spread - 1.0) * i / max(1, scenario.agents - 1) for i in range(scenario.agents)
    ]
    random.Random(f"{seed}/stagger").shuffle(factors)
    sim.stagger = dict(zip(labels, factors, strict=True))
    with finish_answered_turns(rule.finish_answered):
        sim.state, commands = coordination.new_run(RUN, QUESTION, sim.config, [], sim.now, SECRET)
        _handle(sim, commands)
        while sim.queue and not sim.done:
            at, _, turn_id = heapq.heappop(sim.queue)
            turn = sim.live.get(turn_id)
            if turn is None:
                continue  # cancelled: the worker stopped it
            sim.now = at
            del sim.live[turn_id]
            verdict = _step(sim, _submission(sim, turn))
            # Only a vote can be stale (discarded); nothing is ever rejected.
            if (
                verdict is None
                or verdict.status == "rejected"
                or (verdict.status == "stale" and turn.action != "vote")
            ):
                raise AssertionError(f"seed {seed}: {turn} got {verdict}")
    return sim.stats


# -- the report ---------------------------------------------------------------------------


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)]


@dataclass
class Summary:
    runs: int
    completed: int
    accepted: float
    lost: float
    first_lost: float
    wasted: float
    turns: float
    cancelled: float
    prompt_kwords: float
    consensus_mean: float
    consensus_p90: float


def summarise(stats: list[RunStats]) -> Summary:
    done = [s for s in stats if s.completed]
    times = [s.consensus_seconds for s in done]
    return Summary(
        runs=len(stats),
        completed=len(done),
        accepted=statistics.fmean(s.answers_accepted for s in stats),
        lost=statistics.fmean(s.answers_lost for s in stats),
        first_lost=statistics.fmean(s.first_answers_lost for s in stats),
        wasted=statistics.fmean(s.votes_wasted for s in stats),
        turns=statistics.fmean(s.turns for s in stats),
        cancelled=statistics.fmean(s.turns_cancelled for s in stats),
        prompt_kwords=statistics.fmean(s.prompt_words for s in stats) / 1000,
        consensus_mean=statistics.fmean(times) if times else math.nan,
        consensus_p90=_p90(times) if times else math.nan,
    )


def seeds_for(scenario: Scenario, seeds: int) -> int:
    """Seeds per row: a 10-agent run costs ~10x a 3-agent run, so it gets 3/10 of them
    (the whole bench stays under a minute on a busy 2-core machine)."""
    return seeds if scenario.agents < 10 else max(1, seeds * 3 // 10)


def _cell(task: tuple[Scenario, Rule, int]) -> Summary:
    scenario, rule, seeds = task
    return summarise([simulate(scenario, rule, seed) for seed in range(seeds)])


def measure(
    cells: list[tuple[Scenario, Rule]], seeds: int, processes: int = 1
) -> dict[tuple[str, str], Summary]:
    """Summaries per (scenario name, rule name); the same whatever ``processes`` is."""
    tasks = [(sc, rule, seeds_for(sc, seeds)) for sc, rule in cells]
    # The dearest cells first, so that the processes finish together.
    order = sorted(range(len(tasks)), key=lambda i: -tasks[i][0].agents)
    if processes > 1:
        pool = multiprocessing.get_context("fork").Pool(processes)
        try:
            done = pool.map(_cell, [tasks[i] for i in order], chunksize=1)
        finally:
            pool.close()
            pool.join()
    else:
        done = [_cell(tasks[i]) for i in order]
    return {(tasks[i][0].name, tasks[i][1].name): s for i, s in zip(order, done, strict=True)}


def _table(
    results: dict[tuple[str, str], Summary], cells: list[tuple[Scenario, Rule]]
) -> list[str]:
    lines = [
        "| scenario | rule | answers accepted | answers lost (first) | votes wasted "
        "| turns (cancelled) | prompt kwords | consensus mean s | consensus p90 s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario, rule in cells:
        s = results[scenario.name, rule.name]
        runs = f"{scenario.name} ({s.runs} runs" + (
            ")" if s.completed == s.runs else f", {s.runs - s.completed} incomplete)"
        )
        lines.append(
            f"| {runs} | {rule.name} | {s.accepted:.2f} | {s.lost:.2f} ({s.first_lost:.2f}) "
            f"| {s.wasted:.2f} "
            f"| {s.turns:.1f} ({s.cancelled:.1f}) | {s.prompt_kwords:.1f} "
            f"| {s.consensus_mean:.1f} | {s.consensus_p90:.1f} |"
        )
    return lines


def _num(value: float, fmt: str) -> str:
    text = f"{value:{fmt}}"
    return text.lstrip("+-") if float(text) == 0 else text


def _pct(new: float, old: float) -> str:
    return f"{(new / old - 1) * 100:+.0f}%"


MAIN_CELLS = [(sc, rule) for sc in SCENARIOS for rule in RULES]
SENSITIVITY_CELLS = [(sc, rule) for sc in SENSITIVITY for rule in RULES[:2]]


def main(seeds: int = 200) -> int:
    started = time.monotonic()
    processes = min(4, os.cpu_count() or 1)
    results = measure(MAIN_CELLS + SENSITIVITY_CELLS, seeds, processes)
    took = time.monotonic() - started
    cpu = sum(
        usage.ru_utime + usage.ru_stime
        for usage in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    )
    out = _report(results, seeds)
    out.append("")
    out.append(
        f"{sum(seeds_for(sc, seeds) for sc, _ in MAIN_CELLS + SENSITIVITY_CELLS)} simulated "
        f"runs in {took:.1f} s ({cpu:.1f} s CPU, {processes} processes)."
    )
    print("\n".join(out))
    return 0


def _report(results: dict[tuple[str, str], Summary], seeds: int) -> list[str]:
    narrowed, literal, interrupt = (r.name for r in RULES)
    out = [
        "## `restart_policy: finish`: which running turns finish (`bench/bench_restart_policy.py`)",
        "",
        "Discrete-event simulation driving the real `coordination.apply` with simulated "
        "agents and a simulated clock. Turns last lognormal times (vote ~2 s, answer ~5 s; "
        f"first answers staggered ×1..{STAGGER:.0f} across the agents). An agent with no "
        "answer writes one; a later turn improves the agent's answer with probability p "
        "(at most r accepted improvements per agent), else votes for the answer it rates "
        "best. *Agreeing*: p = 0.05, r = 1, little rating noise; *disagreeing*: p = 0.3, "
        "r = 2, noisy ratings. Answers are distinct texts of 150-250 words. "
        f"{seeds} seeds per row ({seeds_for(SCENARIOS[-1], seeds)} with 10 agents), the "
        "same random numbers for an agent's k-th turn under every rule.",
        "",
        "*narrowed* = `coordination.FINISH_ANSWERED_TURNS = False` (the implementation: "
        "only an agent with no answer yet finishes its running turn); *literal* = `True` "
        "(PROTOCOL.md: every running turn finishes). Means per run. *Answers lost*: "
        "answer-writing turns cancelled before they submitted (in brackets: first answers, "
        "by an agent that had none yet). *Votes wasted*: votes "
        "discarded as stale. *Turns*: turns published = model calls started (every turn is "
        "taken at once), presentation included; cancelled ones in brackets. *Prompt*: words "
        "of the messages of every turn request. *Consensus*: seconds from the start to "
        "consensus.",
        "",
        *_table(results, MAIN_CELLS),
        "",
        "Sensitivity: the same disagreeing runs when a cancelled improvement is not tried "
        "again (the budget r counts decisions to improve, not accepted answers), as if the "
        "agent, shown the newer answers, no longer wanted to improve. The literal rule never "
        "cancels, so only the narrowed rule's figures move.",
        "",
        *_table(results, SENSITIVITY_CELLS),
        "",
        *_conclusion(results),
    ]
    return out


def _conclusion(results: dict[tuple[str, str], Summary]) -> list[str]:
    """The paragraph stating who wins on what, from the figures themselves."""
    narrowed, literal, interrupt = (r.name for r in RULES)
    small = [sc.name for sc in SCENARIOS if sc.agents < 10]
    big = next(sc.name for sc in SCENARIOS if sc.agents == 10 and sc.p_improve > 0.1)
    big_agree = next(sc.name for sc in SCENARIOS if sc.agents == 10 and sc.p_improve <= 0.1)
    big_sens = next(sc.name for sc in SENSITIVITY if sc.agents == 10)

    def get(name: str, rule: str) -> Summary:
        return results[name, rule]

    def span(values: list[float], fmt: str = ".2f") -> str:
        lo, hi = (_num(v, fmt) for v in (min(values), max(values)))
        return lo if lo == hi else f"{lo} to {hi}"

    sooner = [get(n, literal).consensus_mean - get(n, narrowed).consensus_mean for n in small]
    turns_pct = [get(n, narrowed).turns / get(n, literal).turns * 100 - 100 for n in small]
    lost_small = [get(n, narrowed).lost for n in small]
    wasted_small = [get(n, literal).wasted for n in small]
    p90_small = [get(n, narrowed).consensus_p90 - get(n, literal).consensus_p90 for n in small]
    b_n, b_l = get(big, narrowed), get(big, literal)
    a_n, a_l = get(big_agree, narrowed), get(big_agree, literal)
    s_n, s_l = get(big_sens, narrowed), get(big_sens, literal)
    interrupt_worst = all(
        get(sc.name, interrupt).turns >= max(get(sc.name, r).turns for r in (narrowed, literal))
        for sc in SCENARIOS
    )
    first_lost = [get(sc.name, interrupt).first_lost for sc in SCENARIOS]
    lines = [
        f"**Result.** With 3-5 agents the two `finish` rules cost about the same: the "
        f"narrowed rule reaches consensus {span(sooner, '.1f')} s sooner on average (its p90 "
        f"is {span(p90_small, '+.1f')} s off the literal rule's) with {span(turns_pct, '+.0f')}% "
        f"turns, while the literal "
        f"rule loses no answer (narrowed: {span(lost_small)} per run, all improvements, since "
        f"first answers always finish) and wastes {span(wasted_small)} stale votes instead. "
        f"With 10 agents answers arrive faster than an improvement takes, and the narrowed rule "
        f"cancels improvements over and over: agreeing, it saves "
        f"{a_l.consensus_mean - a_n.consensus_mean:.1f} s but publishes "
        f"{_pct(a_n.turns, a_l.turns)} turns; disagreeing, it loses {b_n.lost:.1f} answers per "
        f"run and needs {_pct(b_n.turns, b_l.turns)} turns, "
        f"{_pct(b_n.prompt_kwords, b_l.prompt_kwords)} prompt words and "
        f"{_pct(b_n.consensus_mean, b_l.consensus_mean)} time to consensus "
        f"({_pct(b_n.consensus_p90, b_l.consensus_p90)} at p90) against the literal rule's "
        f"{b_l.wasted:.1f} wasted votes. Only when a cancelled improvement is never tried again "
        f"(sensitivity) is the narrowed rule cheaper there ({_pct(s_n.turns, s_l.turns)} turns, "
        f"{_pct(s_n.prompt_kwords, s_l.prompt_kwords)} prompt words, "
        f"{_pct(s_n.consensus_mean, s_l.consensus_mean)} time), and it is so by dropping "
        f"{s_n.lost:.1f} improvements per run ({_pct(s_n.accepted, s_l.accepted)} accepted "
        f"answers)."
        + (
            " `interrupt` publishes the most turns in every scenario: it also cancels first "
            f"answers in flight ({span(first_lost)} per run), which both `finish` rules keep."
            if interrupt_worst
            else ""
        )
        + " The simulation counts answers, it does not weigh them: whether an improvement "
        "begun on an older answer set is worth having is not measured.",
        "",
    ]
    together = next(sc.name for sc in SCENARIOS if sc.stagger == 1.0)
    t_n, t_l = get(together, narrowed), get(together, literal)
    lines.append(
        f"**Decision: the narrowed rule stays the default.** When first answers arrive close "
        f"together (one model behind every agent: the common case), the first agent to answer "
        f"is already voting on an answer set that changes a moment later; the literal rule "
        f"lets that vote finish and then discards it ({t_l.consensus_mean:.1f} s to consensus "
        f"against {t_n.consensus_mean:.1f} s here; with identical durations, as in the "
        f"critical-path benchmark, a whole extra phase). Neither `finish` rule ever loses a "
        f"first answer. What the narrowed rule loses are improvements begun on an older answer "
        f"set, and with 10 disagreeing agents that costs it more turns and time than it saves; "
        f"large teams are the subject of batched restarts (the performance issue), not of "
        f"this switch (`coordination.FINISH_ANSWERED_TURNS`)."
    )
    return lines


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
