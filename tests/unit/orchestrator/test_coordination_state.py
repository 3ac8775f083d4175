"""Run state: persistence round-trips, idempotent redeliveries, next_wakeup, prompts."""

from __future__ import annotations

from massgen_orchestrator import prompts
from massgen_orchestrator.commands import CommandAdapter, Tick
from massgen_orchestrator.coordination import apply
from massgen_orchestrator.state import RunState, next_wakeup
from massgen_proto.messages import TurnStarted
from orchestrator_driver import START, Driver, kinds, make_config, verdict_of

A1 = "Paris is the capital of France."
A2 = "The capital of France is Paris, which sits on the Seine."


def test_state_round_trips_mid_run_and_behaves_identically():
    d = Driver(make_config(3, answer_novelty_requirement="balanced"))
    d.play([("agent1", "answer", A1), ("agent2", "answer", A2)])
    d.fail("agent3")
    resumed = RunState.model_validate_json(d.state.model_dump_json())
    assert resumed == d.state
    script = [
        ("agent1", "vote", "agent2"),
        ("agent2", "vote", "agent2"),
    ]
    twin = Driver(make_config(3))
    twin.state, twin.now = resumed, d.now
    assert twin.play(script) == d.play(script)
    assert twin.tick(1.0) == d.tick(1.0)
    assert twin.state == d.state
    assert twin.state.model_dump_json() == d.state.model_dump_json()


def test_commands_round_trip_through_json():
    d = Driver()
    d.answer("agent1", A1)
    for command in d.log:
        assert CommandAdapter.validate_json(CommandAdapter.dump_json(command)) == command


def test_duplicate_submission_gets_same_verdict_without_reapplying():
    d = Driver(make_config(2))
    first = d.answer("agent1", A1)
    assert verdict_of(first).status == "accepted"
    state = d.state
    again = d.answer("agent1", A1, turn_id="r1-agent1-t1")
    assert kinds(again) == ["verdict accepted"]
    assert verdict_of(again) == verdict_of(first)
    assert d.state == state and len(d.state.answers) == 1


def test_duplicate_rejection_is_replayed_too():
    d = Driver(make_config(2))
    first = d.vote("agent1", "agent2")
    again = d.vote("agent1", "agent2")
    assert kinds(again) == ["verdict rejected"]
    assert verdict_of(again) == verdict_of(first)


def test_new_worker_after_redelivery_starts_attempts_afresh():
    d = Driver(make_config(2))
    d.start("agent1", worker="w1")
    d.vote("agent1", "agent2", attempt=1)  # rejected: no answers yet
    d.start("agent1", worker="w2", delivery=2)
    assert verdict_of(d.answer("agent1", A1, attempt=1)).status == "accepted"


def test_apply_does_not_mutate_its_input():
    d = Driver()
    before = d.state.model_dump_json()
    apply(d.state, TurnStarted(run_id="r1", turn_id="r1-agent1-t1", worker="w"), START)
    apply(d.state, Tick(), START + 10_000)
    assert d.state.model_dump_json() == before


def test_next_wakeup_is_earliest_pending_time():
    d = Driver(make_config(2, timeout=300, turn_timeout=60))
    assert next_wakeup(d.state) == START + 60  # first turns' deadlines
    d.fail("agent1", dt=10)
    assert next_wakeup(d.state) == START + 10.5  # agent1's retry
    d.tick(0.5)
    assert next_wakeup(d.state) == START + 60  # agent2's turn; agent1's retry turn ends at 70.5
    d.answer("agent2", A2)
    d.answer("agent1", A1)
    d.vote("agent2", "agent1")  # stale: fresh turn
    # Nothing else pending: a tick now changes nothing.
    wake = next_wakeup(d.state)
    assert wake is not None and wake > d.now
    assert kinds(d.tick(0.0)) == []


def test_tick_before_wakeup_changes_nothing():
    d = Driver(make_config(2))
    state = d.state
    assert kinds(d.tick(next_wakeup(state) - START - 0.001)) == []
    assert d.state == state


def test_workflow_tools_json():
    assert prompts.workflow_tools([], can_answer=True) == [
        {
            "type": "function",
            "function": {
                "name": "new_answer",
                "description": "Submit your complete answer to the task (new, or better than "
                "the current ones).",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "content": {
                            "type": "string",
                            "description": "The full answer text; leave it empty to submit "
                            "the answer you wrote as text before this call.",
                        }
                    },
                    # Optional: the answer may be the text written before the call.
                    "required": [],
                },
            },
        }
    ]
    vote_only = prompts.workflow_tools(["agent1", "agent3"], can_answer=False)
    assert [t["function"]["name"] for t in vote_only] == ["vote"]
    params = vote_only[0]["function"]["parameters"]
    assert params["properties"]["agent_id"]["enum"] == ["agent1", "agent3"]
    assert params["required"] == ["agent_id", "reason"]


def test_coordination_prompt_contents():
    messages = prompts.coordination_messages(
        task="Task?",
        answers={"agent2": "B"},
        system_message="Be brief.",
        voting_sensitivity="strict",
        remaining_seconds=41.6,
    )
    system, user = messages[0].content, messages[-1].content
    # The system message is the same in every turn (llama.cpp's prompt cache reuses it
    # and the task); what to do now comes after the answers.
    assert system == "Be brief."
    assert user.count(prompts.ROLE) == 1  # said where the answers are, not in the system
    assert "Be demanding" in user and "about 42 seconds" in user
    assert user.startswith("Task?\n\nCURRENT ANSWERS:\n<agent2>\nB\n</agent2>\n\n")
    # The question is asked again last, where a small model looks.
    assert user.endswith("Check each one, then vote for the best, or write a better answer.")
    capped = prompts.coordination_messages(task="T", answers={"agent2": "B"}, can_answer=False)
    assert capped[-1].content.endswith("in a few sentences, then vote for the best.")
    # A first turn is the task alone, as in plain chat (a coordination frame there made
    # a small model write worse code), unless the agent has tools or plans; it is a
    # prefix of the agent's later turns, which llama.cpp's cache then reuses.
    plain = prompts.coordination_messages(
        task="Task?", answers={}, has_tools=False, remaining_seconds=500
    )
    assert [(m.role, m.content) for m in plain] == [("user", "Task?")]  # no system message
    tooled = prompts.coordination_messages(task="Task?", answers={}, remaining_seconds=500)
    assert tooled[-1].content.startswith("Task?\n\nYou may use your tools first; then write")
    assert (
        "then call new_answer" in tooled[-1].content and "about 500 seconds" in tooled[-1].content
    )
    planned = prompts.coordination_messages(
        task="Task?", answers={}, has_tools=False, planning=prompts.PLANNING_MODE
    )
    assert planned[-1].content == f"Task?\n\n{prompts.PLANNING_MODE}"
    assert user.startswith(plain[-1].content)
    assert len(f"{system} {user}".split()) < 135  # short: local models read slowly
    # Votes come after checking the answers against the task; running code when possible.
    assert "First check each current answer against the task." in user
    assert "run its code" not in user
    coder = prompts.coordination_messages(task="T", answers={"agent2": "B"}, can_run_code=True)
    assert "check each current answer against the task (run its code with your tools)" in (
        coder[-1].content
    )
    vote_only = prompts.coordination_messages(task="T", answers={"agent2": "B"}, can_answer=False)
    # At the cap the check and the vote are asked for once, last.
    assert "You have used all your answers: write no new answer." in vote_only[-1].content
    assert vote_only[-1].content.count("Check each one") == 1
    capped_coder = prompts.coordination_messages(
        task="T", answers={"agent2": "B"}, can_answer=False, can_run_code=True
    )
    assert capped_coder[-1].content.endswith(
        "Check each one (run its code with your tools), then vote for the best."
    )
    # Other tools are mentioned only to an agent that has some.
    assert "You may use other tools first" in user
    plain = prompts.coordination_messages(task="T", answers={"agent2": "B"}, has_tools=False)
    assert "other tools" not in plain[-1].content
    assert "End with exactly one workflow tool call." in plain[-1].content


def test_presentation_prompt_contents():
    messages = prompts.presentation_messages(
        task="Task?",
        answers={"agent1": "A", "agent2": "B"},
        winner_label="agent2",
        vote_reasons=["clearest", " "],
    )
    assert [m.role for m in messages] == ["user"]  # no system message: the agent has none
    assert prompts.ROLE in messages[-1].content
    user = messages[-1].content
    assert "You are agent2" in user
    assert "<agent1>\nA\n</agent1>" in user and "- clearest" in user
    assert "VOTES" not in user and "OBJECTIONS" not in user


def test_presentation_prompt_keeps_detail_and_shows_votes_and_objections():
    messages = prompts.presentation_messages(
        task="Task?",
        answers={"agent1": "A", "agent2": "B", "agent3": "C"},
        winner_label="agent2",
        vote_reasons=["handles empty input"],
        votes={"agent1": 1, "agent2": 2, "agent3": 0},
        dissent=[("agent1", "agent2 fails on negatives"), ("agent3", " ")],
    )
    user = messages[-1].content
    # The answers as the winner last read them (its own last), then what to do last.
    assert user.index("<agent3>") < user.index("<agent1>") < user.index("<agent2>")
    assert "VOTES: agent1 1, agent2 2, agent3 0" in user
    assert "WHY AGENT2 WAS CHOSEN:\n- handles empty input" in user
    objections = "OBJECTIONS (votes for other answers):\n- for agent1: agent2 fails on negatives"
    assert f"{objections}\n\n{prompts.ROLE} You are agent2; your answer was chosen." in user
    assert "Keep all of your answer's detail" in user
    assert user.endswith(
        "Do not mention agents, answers, votes or this process. Reply with the final answer only."
    )


def test_answers_share_a_bounded_prompt_and_the_presenter_keeps_its_own():
    from massgen_orchestrator.prompts import MIN_SHARE, answers_block

    answers = {f"agent{i}": f"answer {i} " + "x" * 5000 for i in range(1, 5)}
    block = answers_block(answers, budget=8000)
    assert len(block) < 8000 + 4 * 200  # labels and notes aside, within the budget
    assert block.count("more characters of") == 4
    assert "[... 3009 more characters of agent2's answer not shown]" in block
    kept = answers_block(answers, budget=8000, keep="agent1")
    assert answers["agent1"] in kept and "of agent1's answer" not in kept
    many = answers_block({f"agent{i}": "y" * 2000 for i in range(1, 101)}, budget=8000)
    assert many.count("y" * MIN_SHARE) == 100  # a floor per answer, however many
    assert answers_block(answers) == answers_block(answers, None)


def test_answers_show_a_docstring_copied_from_the_task_once_but_the_presenters_own_whole():
    from massgen_orchestrator.prompts import answers_block

    doc = '"""Add two numbers, the first and the second, and return their sum."""'
    task = f"Complete:\n```python\ndef add(a, b):\n    {doc}\n```"
    answer = f"```python\ndef add(a, b):\n    {doc}\n    return a + b\n```"
    answers = {"agent1": answer, "agent2": answer}
    block = answers_block(answers, task=task, keep="agent2")
    assert block.count(doc) == 1 and "(the task's docstring)" in block
    assert block.index(doc) > block.index("<agent2>")  # the presenter's own answer is whole
    assert answers_block(answers).count(doc) == 2  # no task: nothing to compare with
    # The presentation begins as the winner's last coordination turn did, up to its own
    # answer (shown last): llama.cpp reuses all of that from the cache.
    voted = prompts.coordination_messages(
        task=task, answers=answers, can_answer=False, viewer="agent2", system_message="S"
    )
    presented = prompts.presentation_messages(
        task=task, answers=answers, winner_label="agent2", system_message="S"
    )
    assert voted[0] == presented[0]
    end = voted[-1].content.index("<agent2>")
    assert presented[-1].content[:end] == voted[-1].content[:end]


def test_answers_show_their_runs_of_examples_as_a_note_but_the_presenters_own_whole():
    from massgen_orchestrator.prompts import answers_block

    answer = (
        "```python\ndef add(a, b):\n    return a + b\n\nprint(add(1, 2))\nprint(add(2, 2))\n```"
    )
    block = answers_block({"agent1": answer, "agent2": answer}, task="Write add.", keep="agent2")
    assert block.count("print(add(1, 2))") == 1
    assert block.index("print(add(1, 2))") > block.index("<agent2>")
    assert "# (2 lines running examples, not shown)" in block.split("<agent2>")[0]


def test_a_viewer_reads_the_other_answers_first_and_its_own_last():
    answers = {"agent1": "A", "agent2": "B", "agent3": "C"}

    def order(viewer):
        user = prompts.coordination_messages(task="T", answers=answers, viewer=viewer)[-1]
        return sorted(answers, key=lambda label: user.content.index(f"<{label}>"))

    assert order(None) == ["agent1", "agent2", "agent3"]
    assert order("agent1") == ["agent2", "agent3", "agent1"]
    assert order("agent2") == ["agent3", "agent1", "agent2"]
    assert order("agent4") == ["agent1", "agent2", "agent3"]  # no answer of its own yet
