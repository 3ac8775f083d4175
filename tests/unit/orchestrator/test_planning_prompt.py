"""Planning mode (``orchestrator.coordination.enable_planning_mode``) in the coordination prompt."""

from __future__ import annotations

from massgen_orchestrator import prompts
from orchestrator_driver import Driver, make_config


def test_planning_instruction_is_off_by_default_and_the_config_text_wins():
    assert prompts.planning_instruction(False, "Plan only.") is None
    assert prompts.planning_instruction(True) == prompts.PLANNING_MODE
    assert prompts.planning_instruction(True, "  ") == prompts.PLANNING_MODE
    assert prompts.planning_instruction(True, " Plan only. ") == "Plan only."


def test_coordination_prompt_carries_the_planning_instruction():
    plain = prompts.coordination_messages(task="Post the summary", answers={})
    planned = prompts.coordination_messages(
        task="Post the summary", answers={}, planning=prompts.planning_instruction(True)
    )
    assert prompts.PLANNING_MODE not in plain[-1].content
    assert planned[-1].content == f"{plain[-1].content} {prompts.PLANNING_MODE}"
    assert planned[:-1] == plain[:-1]


def test_a_run_in_planning_mode_sends_the_instruction_with_every_coordination_turn():
    config = make_config(2)
    config = config.model_copy(
        update={
            "orchestrator": config.orchestrator.model_copy(
                update={
                    "coordination": config.orchestrator.coordination.model_copy(
                        update={
                            "enable_planning_mode": True,
                            "planning_mode_instruction": "Plan, do not act.",
                        }
                    )
                }
            )
        }
    )
    d = Driver(config)
    first = d.turn("agent1").messages[-1].content
    assert first.endswith("\n\nPlan, do not act.")  # a first turn: the task, then the plan rule
    d.answer("agent1", "A plan.")
    assert " Plan, do not act. " in d.turn("agent1").messages[-1].content
    assert Driver(make_config(2)).turn("agent1").messages[0].content != first
