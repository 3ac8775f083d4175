"""Judging workflow submissions: every rejection kind, novelty, the answer cap."""

from __future__ import annotations

import pytest
from massgen_orchestrator.coordination import (
    AnswerCall,
    Rejection,
    VoteCall,
    judge,
    normalise,
    similarity,
    winner_of,
)
from massgen_orchestrator.judging import (
    agreement,
    best_checked,
    check_problem,
    presentation_problem,
    unchecked_change,
    unsound,
)
from massgen_orchestrator.votes import ONLY_ANSWER_REASON
from massgen_proto.messages import CodeCheck, WorkflowCall
from orchestrator_driver import Driver, answer, events, kinds, make_config, verdict_of, vote

A1 = "Paris is the capital of France."


def _rejected(cmds, tool: str | None) -> str:
    """Assert a rejection transition (event + verdict, no state change) and return its text."""
    assert kinds(cmds)[-2:] == [kinds(cmds)[-2], "verdict rejected"]
    rejected = events(cmds)[-1]
    assert rejected.kind == "workflow_rejected" and rejected.tool == tool
    verdict = verdict_of(cmds)
    assert rejected.error == verdict.message
    return verdict.message


def _after_one_answer(**orchestrator) -> Driver:
    """agent1 answered; agent2 is on a fresh turn that offers new_answer and vote."""
    d = Driver(make_config(2, restart_policy="interrupt", **orchestrator))
    d.answer("agent1", A1)
    return d


def test_no_workflow_call_is_rejected_with_a_reminder_listing_tools():
    d = _after_one_answer()
    before = d.state.agents[1].model_copy(update={"last_submission": None})
    cmds = d.submit("agent2", [])
    assert kinds(cmds) == ["workflow_rejected agent2", "verdict rejected"]
    text = _rejected(cmds, None)
    assert "did not call a workflow tool" in text and "new_answer, vote" in text
    # Nothing but the idempotency record changed.
    assert d.state.agents[1].model_copy(update={"last_submission": None}) == before


@pytest.mark.parametrize(
    "calls",
    [
        [vote("agent1"), vote("agent1")],
        [answer("Lyon"), vote("agent1")],
    ],
    ids=["two votes", "answer and vote"],
)
def test_more_than_one_workflow_call_is_rejected(calls):
    d = _after_one_answer()
    text = _rejected(d.submit("agent2", calls), calls[0].name)
    assert "2 workflow calls" in text and "exactly one" in text
    assert d.state.answer_set_version == 1 and d.state.agents[1].vote is None


def test_unknown_tool_is_rejected_naming_offered_tools():
    d = _after_one_answer()
    text = _rejected(d.submit("agent2", [WorkflowCall(name="submit", arguments={})]), "submit")
    assert text == "'submit' is not a workflow tool here. Call exactly one of: new_answer, vote."


def test_vote_with_no_answers_is_rejected():
    d = Driver(make_config(2))
    text = _rejected(d.vote("agent1", "agent2"), "vote")
    assert "no answer exists to vote for yet" in text and "new_answer" in text


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (WorkflowCall(name="new_answer", arguments='{"content": "Par'), '{"content"'),
        (WorkflowCall(name="new_answer", arguments={"text": "Lyon"}), '{"content"'),
        (WorkflowCall(name="new_answer", arguments={"content": "   "}), "got no answer"),
        (WorkflowCall(name="vote", arguments="agent1"), '{"agent_id"'),
        (WorkflowCall(name="vote", arguments={"reason": "good"}), "agent_id one of: agent1"),
        (WorkflowCall(name="vote", arguments={"agent_id": " "}), "agent_id one of: agent1"),
    ],
    ids=["raw string", "missing content", "blank content", "vote string", "no agent_id", "blank"],
)
def test_malformed_arguments_are_rejected_saying_what_is_expected(call, expected):
    d = _after_one_answer()
    assert expected in _rejected(d.submit("agent2", [call]), call.name)


@pytest.mark.parametrize("target", ["agent2", "agent9", "alpha", "nobody"])
def test_vote_for_label_without_answer_lists_valid_labels(target):
    d = _after_one_answer()
    text = _rejected(d.vote("agent2", target), "vote")
    assert text == "agent_id must be the label of an agent with a current answer: one of agent1."


def test_vote_label_is_normalised():
    d = _after_one_answer()
    cmds = d.vote("agent2", " <Agent1> ")
    assert verdict_of(cmds).status == "accepted"
    assert d.state.agents[1].vote.target == "agent1"


def _counted_as_vote(cmds, voter: str, target: str, identical: bool = True) -> None:
    """A repeated answer became the vote it means: accepted, no rejection, no attempt lost."""
    assert kinds(cmds) == [f"vote_accepted {voter}", "verdict accepted"], kinds(cmds)
    vote_event = events(cmds)[0]
    assert vote_event.target == target and vote_event.same_answer
    assert ("identical" in vote_event.reason) == identical
    assert f"counted as your vote for {target}" in verdict_of(cmds).message


def test_identical_answer_after_whitespace_and_case_normalisation_is_a_vote():
    d = _after_one_answer()
    _counted_as_vote(d.answer("agent2", "paris  is the\n capital of FRANCE. "), "agent2", "agent1")
    assert d.state.agents[1].vote.target == "agent1"
    assert d.state.answer_set_version == 1  # no new answer, no restart of anyone


def test_identical_to_own_previous_answer_is_a_vote_for_itself():
    d = _after_one_answer()
    _counted_as_vote(d.answer("agent1", A1), "agent1", "agent1")


def test_only_current_answers_count_for_novelty():
    d = _after_one_answer()
    d.answer("agent1", "Paris, on the Seine.")
    # A1 is agent1's superseded answer: submitting it again is allowed.
    assert verdict_of(d.answer("agent2", A1)).status == "accepted"


SIMILAR = "Paris is the capital of France today."  # Jaccard 6/7 = 0.86 vs A1
SOMEWHAT = "Paris is the capital of France and its largest city."  # 6/10 = 0.60 vs A1


def test_similarity_scores():
    assert similarity(A1, SIMILAR) == pytest.approx(6 / 7)
    assert similarity(A1, SOMEWHAT) == pytest.approx(0.6)
    assert similarity("", "") == 1.0
    assert normalise("  A\tb \n C ") == "a b c"


@pytest.mark.parametrize(
    ("novelty", "content", "rejected"),
    [
        ("lenient", SIMILAR, False),
        ("balanced", SIMILAR, True),
        ("balanced", SOMEWHAT, False),
        ("strict", SOMEWHAT, True),
        ("strict", "Lyon is a big French city with a famous food scene.", False),
    ],
)
def test_novelty_thresholds(novelty, content, rejected):
    d = _after_one_answer(answer_novelty_requirement=novelty)
    cmds = d.answer("agent2", content)
    if not rejected:
        assert verdict_of(cmds).status == "accepted"
        return
    # Too similar under the novelty rule: counted as a vote for the answer it repeats.
    _counted_as_vote(cmds, "agent2", "agent1", identical=False)
    score = f"{similarity(A1, content):.2f}"
    assert f"word overlap {score}" in events(cmds)[0].reason


def test_answer_cap_offers_vote_only_and_rejects_new_answer():
    d = Driver(make_config(2, max_new_answers_per_agent=1))
    d.answer("agent1", A1)
    d.answer("agent2", "Lyon is not the capital; Paris is.")
    # Both reached the cap with their first answer: from then on they may only vote.
    for label in ("agent1", "agent2"):
        assert [t["function"]["name"] for t in d.turn(label).tools] == ["vote"]
        assert "used all your answers" in d.turn(label).messages[-1].content
    text = _rejected(d.answer("agent1", "Another answer entirely."), "new_answer")
    assert text == (
        "new_answer is not available: you have reached the limit of 1 answer(s). Call one of: vote."
    )


def test_a_vote_with_one_possible_target_is_recorded_without_a_turn():
    """At its cap, with no tools and one answer shown, a turn could only vote for it."""
    d = Driver(make_config(3, max_new_answers_per_agent=1))
    cmds = d.answer("agent1", A1)
    assert kinds(cmds) == ["answer_accepted agent1", "vote_accepted agent1", "verdict accepted"]
    assert events(cmds)[1].target == "agent1" and events(cmds)[1].reason == ONLY_ANSWER_REASON
    # The next answer undoes that vote; the agent at its cap then waits for the third
    # first answer (a vote now would be undone by it), and all three vote together.
    cmds = d.answer("agent2", "Lyon is not the capital; Paris is.")
    assert "publish agent1" not in kinds(cmds) and "publish agent2" not in kinds(cmds)
    cmds = d.answer("agent3", "Marseille.")
    assert sorted(k for k in kinds(cmds) if k.startswith("publish")) == [
        "publish agent1", "publish agent2", "publish agent3"
    ]  # fmt: skip
    # Agents that can still answer keep their early turn.
    free = Driver(make_config(3))
    assert "publish agent1" in kinds(free.answer("agent1", A1))


def test_identical_answers_at_the_cap_finish_in_two_model_phases():
    d = Driver(make_config(3, max_new_answers_per_agent=1))
    d.answer("agent1", A1)
    d.answer("agent2", A1)
    cmds = d.answer("agent3", A1)
    assert "presentation_started agent1" in kinds(cmds)
    assert len(d.requests()) == 4  # 3 first turns and the presentation


def test_judge_returns_accepted_calls():
    latest = {"agent1": A1}
    offered = ["new_answer", "vote"]
    assert judge([answer("Lyon")], offered=offered, latest=latest) == AnswerCall("Lyon")
    assert judge([vote("agent1", " fine ")], offered=offered, latest=latest) == VoteCall(
        "agent1", "fine"
    )
    no_reason = WorkflowCall(name="vote", arguments={"agent_id": "agent1"})
    assert judge([no_reason], offered=offered, latest=latest) == VoteCall("agent1", "")
    assert isinstance(judge([], offered=offered, latest=latest), Rejection)


def test_rejections_allow_retry_within_the_turn():
    d = _after_one_answer()
    d.submit("agent2", [], attempt=1)
    d.vote("agent2", "agent7", attempt=2)
    cmds = d.vote("agent2", "agent1", attempt=3)
    assert kinds(cmds) == [
        "vote_accepted agent2",
        "verdict accepted",
    ]


def test_workflow_call_during_presentation_is_rejected():
    d = Driver(make_config(1))
    d.answer("agent1", A1)
    d.vote("agent1", "agent1")
    text = _rejected(d.vote("agent1", "agent1", attempt=1), "vote")
    assert "final presentation" in text


# -- presentation checks (judging.presentation_problem) ----------------------------------

FUNC = "def add(a, b):\n    return a + b\n"
CODE_LONG = f"```python\n{FUNC}```\n" + "y" * 100
"""A code answer long enough to be measured."""


@pytest.mark.parametrize(
    ("presentation", "answer", "problem"),
    [
        ("", "4", "empty presentation"),
        (" \n", "4", "empty presentation"),
        ("The answer is 4.", "4", None),  # longer is fine
        ("4", "It is 4: two plus two.", None),  # short answers are not measured
        ("x" * 39, "y" * 100, None),  # prose may be said shorter
        (
            "x" * 39,
            CODE_LONG,
            f"presentation far shorter than the answer (39 of {len(CODE_LONG)} characters)",
        ),
        (f"```python\n{FUNC}```", f"Adds.\n```python\n{FUNC}```", None),
        (f"```py\n{FUNC}```", FUNC, None),  # an unfenced answer's code counts too
        (
            "```python\ndef plus(a, b):\n    return a + b\n```",
            f"```python\n{FUNC}```",
            "presentation no longer defines add",
        ),
        (
            "Just call add(a, b) on your numbers and you are done here.",
            FUNC,
            "presentation no longer defines add",
        ),
        (
            "```python\ndef add(a, b):\n    return (a + b\n```",
            f"```python\n{FUNC}```",
            "presentation code no longer parses as Python",
        ),
        # The code said twice, the second copy cut off by the token limit.
        (
            f"```python\n{FUNC}```\nAgain:\n```python\ndef add(a, b):\n    return (a",
            f"```python\n{FUNC}```",
            "presentation code no longer parses as Python",
        ),
        # The answer's own code did not parse: the presentation is not held to it.
        (
            "```python\ndef add(a, b):\n    return (a +\n```",
            "```python\ndef add(a, b):\n    return (a\n```",
            None,
        ),
        # Nested helpers may move; only top-level functions must stay.
        (
            f"```python\n{FUNC}```",
            "```python\ndef add(a, b):\n    def inner():\n        pass\n    return a + b\n```",
            None,
        ),
        # The presentation dropped an import its code still needs.
        (
            "```python\ndef total(xs: List[int]) -> int:\n    return sum(xs)\n```",
            "```python\nfrom typing import List\n\n\n"
            "def total(xs: List[int]) -> int:\n    return sum(xs)\n```",
            "presentation uses List but no longer imports it",
        ),
        # An import the presentation no longer needs may go; one it binds itself stays.
        (
            "```python\ndef total(xs: list) -> int:\n    return sum(xs)\n```",
            "```python\nfrom typing import List\n\ndef total(xs: List) -> int:\n"
            "    return sum(xs)\n```",
            None,
        ),
        (
            "```python\nimport math as m\n\ndef root(x):\n    return m.sqrt(x)\n```",
            "```python\nimport math as m\n\ndef root(x):\n    return m.sqrt(x)\n```",
            None,
        ),
    ],
)
def test_presentation_problem(presentation, answer, problem):
    assert presentation_problem(presentation, answer) == problem


# -- standing of answers when votes tie (judging.unsound, judging.agreement) -------------

TASK = 'Complete the function.\n```python\ndef add(a, b):\n    """Sum."""\n```'


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ("It is 4.", None),  # prose is never judged
        (f"```python\n{FUNC}```", None),
        ("```python\ndef add(a, b):\n    return (a +\n```", "its code does not parse as Python"),
        (
            "```python\ndef plus(a, b):\n    return a + b\n```",
            "its code defines none of the task's functions (add)",
        ),
        # Helpers besides the task's function are fine.
        ("```python\ndef _h(x):\n    return x\n\ndef add(a, b):\n    return a + b\n```", None),
    ],
)
def test_unsound(answer, problem):
    assert unsound(answer, TASK) == problem


def test_agreement_compares_definitions_not_docstrings_or_examples():
    loop = "def add(a, b):\n    t = a\n    t += b\n    return t\n"
    a = f"```python\n{FUNC}```"
    b = (
        "Here it is:\n```python\ndef add(a, b):\n    'Adds.'\n    return a + b\n\n"
        "print(add(1, 2))\n```"
    )
    c = f"```python\n{loop}```"
    assert agreement(a, [b]) == 1.0
    assert agreement(a, [b, c]) > agreement(c, [a, b])
    assert agreement(a, []) == 0.0


# -- answers checked against the task's examples ------------------------------------


def _check(passed: int, total: int = 3) -> CodeCheck:
    return CodeCheck(passed=passed, total=total)


def test_only_the_answers_passing_the_most_examples_may_win():
    checks = {"agent1": _check(1), "agent2": _check(3), "agent3": None}
    assert best_checked(["agent1", "agent2", "agent3"], checks) == ["agent2"]
    tied = {"agent1": _check(2), "agent2": _check(2), "agent3": _check(0)}
    assert best_checked(["agent1", "agent2", "agent3"], tied) == ["agent1", "agent2"]
    # When nothing passes (or nothing was checked) the checks decide nothing.
    assert best_checked(["agent1", "agent2"], {"agent1": _check(0), "agent2": None}) == [
        "agent1",
        "agent2",
    ]
    assert best_checked(["agent1"], {"agent1": None}) == ["agent1"]
    # Code whose check could not be had (the gateway was down) is not a failure.
    assert best_checked(["agent1", "agent2", "agent3"], checks, ["agent3"]) == [
        "agent2",
        "agent3",
    ]


def test_a_presentation_may_not_pass_fewer_examples_than_its_answer():
    assert check_problem(_check(1), _check(3)) == (
        "the presentation's code passes 1 of the task's 3 examples, the answer's 3"
    )
    assert check_problem(_check(3), _check(3)) is None
    assert check_problem(_check(3), _check(1)) is None  # it fixed the answer
    assert check_problem(None, _check(3)) is None  # not checked: other rules judge it
    assert check_problem(_check(0), None) is None


def test_an_answer_whose_code_went_unchecked_may_still_win():
    """The gateway died while agent2's answer was checked: it is not shut out by agent1's
    partial pass, and votes decide between them; the prose answer has no code to check."""
    task = 'Write it.\n```python\ndef add(a, b):\n    """\n    >>> add(1, 2)\n    3\n    """\n```'
    d = Driver(make_config(3, timeout=100), question=task)
    partial = answer("```python\ndef add(a, b):\n    return 3\n```")
    d.submit("agent1", [partial.model_copy(update={"check": _check(1)})])
    d.answer("agent2", "```python\ndef add(a, b):\n    return a + b\n```")
    d.answer("agent3", "add returns the sum of a and b.")
    d.vote("agent1", "agent2")
    d.vote("agent3", "agent3")
    assert winner_of(d.state)[0] == "agent2"


def test_a_code_change_nothing_can_check_does_not_replace_the_answer():
    bare = "Write is_odd(n).\n```python\ndef is_odd(n):\n    pass\n```"
    examples = (
        'Write it.\n```python\ndef is_odd(n):\n    """\n    >>> is_odd(3)\n    True\n    """\n```'
    )
    answer = "```python\ndef is_odd(n):\n    return n % 2 == 1\n```"
    rewritten = "Odd numbers:\n```python\ndef is_odd(n):\n    return n % 2 != 0\n```"
    assert unchecked_change(rewritten, answer, bare) == (
        "the presentation changes the answer's code, and the task gives no examples to check that"
    )
    assert unchecked_change(rewritten, answer, examples) is None  # its examples judge it
    passing, failing = CodeCheck(passed=1, total=1), CodeCheck(passed=0, total=1)
    assert unchecked_change(rewritten, answer, examples, passing) is None
    assert unchecked_change(rewritten, answer, examples, failing) == (
        "the presentation changes the answer's code, and its code passes none of the "
        "task's examples"
    )
    assert unchecked_change(answer, answer, examples, failing) is None  # nothing changed
    # The same definitions, said differently (docstring, comments, example runs, prose).
    restyled = (
        "It is odd when the remainder is one.\n```python\ndef is_odd(n):\n"
        '    """True for odd n."""\n    return n % 2 == 1  # remainder\n\n\nprint(is_odd(3))\n```'
    )
    assert unchecked_change(restyled, answer, bare) is None
    assert unchecked_change("Paris.", "The capital is Paris.", "Capital?") is None  # prose
