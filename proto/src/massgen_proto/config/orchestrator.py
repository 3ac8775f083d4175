"""The ``orchestrator`` section: coordination settings, budgets, context paths."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from .base import ConfigModel

__all__ = ["DEFAULT_SKILLS_DIRECTORY", "ContextPath", "CoordinationConfig", "OrchestratorConfig"]

DEFAULT_SKILLS_DIRECTORY = ".agent/skills"
"""Where ``openskills install`` puts skills, and MassGen looks for them by default."""


class ContextPath(ConfigModel):
    """A user folder or file the agents may read (and the winner may write if ``write``)."""

    path: str
    permission: Literal["read", "write"] = "read"
    protected_paths: list[str] = Field(default_factory=list)


class CoordinationConfig(ConfigModel):
    """MassGen's ``orchestrator.coordination`` block."""

    enable_planning_mode: bool = False
    """While answers are compared, agents describe the actions they would take instead of
    taking them; the winner acts in its final presentation."""
    planning_mode_instruction: str | None = None
    """The planning-mode instruction agents read (None: the orchestrator's own)."""
    max_orchestration_restarts: int = Field(default=0, ge=0)
    """MassGen's post-evaluation restarts; not performed here (a warning when above 0)."""
    enable_agent_task_planning: bool = False
    """MassGen's task-list tool for agents; not offered here (a warning when on)."""
    max_tasks_per_plan: int | None = Field(default=None, ge=1)
    task_planning_filesystem_mode: bool = False
    use_skills: bool = False
    """Offer the skills of ``skills_directory``: each agent is told every skill's name and
    description and reads a skill's ``SKILL.md`` (read-only to it) when it needs it."""
    skills_directory: str = Field(default=DEFAULT_SKILLS_DIRECTORY, min_length=1)
    """The skills folder (one sub-folder per skill, as ``openskills install`` makes it);
    relative to the gateway's current folder, as context paths are."""
    massgen_skills: list[str] = Field(default_factory=list)
    """MassGen's own bundled skills by name; not shipped here (a warning when set)."""
    enable_memory_filesystem_mode: bool = False

    @field_validator("skills_directory", mode="before")
    @classmethod
    def _default_folder(cls, value: Any) -> Any:
        # ``skills_directory:`` left empty in YAML is null: MassGen's default folder.
        return DEFAULT_SKILLS_DIRECTORY if value is None else value

    @field_validator("enable_memory_filesystem_mode")
    @classmethod
    def _refused_when_on(cls, value: bool, info: ValidationInfo) -> bool:
        if value:
            raise ValueError(
                f"persistent agent memory is not supported; remove {info.field_name!r} "
                "or set it to false"
            )
        return value

    def warnings(self) -> list[tuple[str, str]]:
        """``(key, why)`` for each key set here that has no effect."""
        found = []
        if self.max_orchestration_restarts:
            found.append((
                "max_orchestration_restarts",
                "ignored (no post-evaluation restarts: a run ends with the winner's "
                "final presentation)",
            ))  # fmt: skip
        if self.enable_agent_task_planning:
            found.append((
                "enable_agent_task_planning",
                "ignored (agents get no task-list tool; max_tasks_per_plan and "
                "task_planning_filesystem_mode with it)",
            ))  # fmt: skip
        # Compared with the default, not "was it set": a dumped config names it always.
        if not self.use_skills and self.skills_directory != DEFAULT_SKILLS_DIRECTORY:
            found.append(("skills_directory", "ignored (use_skills is off)"))
        if self.massgen_skills:
            found.append((
                "massgen_skills",
                "ignored (MassGen's bundled skills are not shipped here; put skills in "
                "skills_directory and set use_skills)",
            ))  # fmt: skip
        return found


class OrchestratorConfig(ConfigModel):
    """Coordination settings (see PROTOCOL.md)."""

    voting_sensitivity: Literal["lenient", "balanced", "strict"] = "lenient"
    answer_novelty_requirement: Literal["lenient", "balanced", "strict"] = "lenient"
    max_new_answers_per_agent: int | None = Field(default=None, ge=1)
    restart_policy: Literal["finish", "interrupt"] = "finish"
    max_agent_failures: int = Field(default=3, ge=1)
    max_tool_calls_per_turn: int = Field(default=100, ge=0)
    """Non-workflow tool calls an agent may make in one turn (this project's key)."""
    answers_prompt_chars: int = Field(default=48_000, ge=1_000)
    """Characters the block of current answers may take in a prompt, shared equally by
    the answers (this project's key): prompts grow with the team, not with answers."""
    max_total_tokens: int | None = Field(default=None, ge=1)
    """Run budget in tokens, prompt and completion, all agents together (this project's
    key). Once reached no turn starts: the best answer so far becomes the final answer."""
    max_cost_usd: float | None = Field(default=None, gt=0)
    """Run budget in US dollars from litellm's price map (local models cost nothing);
    reached, it ends the run as ``max_total_tokens`` does (this project's key)."""
    context_paths: list[ContextPath] = Field(default_factory=list)
    snapshot_storage: str | None = None
    agent_temporary_workspace: str | None = None
    coordination: CoordinationConfig = Field(default_factory=CoordinationConfig)
    skip_coordination_rounds: bool = False
    """MassGen's debug/quick mode: only the first agent works; its first answer wins
    without votes and goes straight to the final presentation."""
    debug_final_answer: str | None = None
    """MassGen's restart test: the text its post-evaluation reviews instead of the real
    final answer. Accepted with a warning: no post-evaluation runs here."""

    def warnings(self) -> list[tuple[str, str]]:
        """``(key, why)`` for each key set here (outside ``coordination``) with no effect."""
        found = []
        if self.debug_final_answer:
            found.append((
                "debug_final_answer",
                "ignored (MassGen only hands it to its post-evaluation, to test restarts; "
                "no post-evaluation or restart happens here, see max_orchestration_restarts)",
            ))  # fmt: skip
        return found

    @model_validator(mode="before")
    @classmethod
    def _reject_dspy(cls, data: Any) -> Any:
        if isinstance(data, dict) and "dspy" in data:
            raise ValueError(
                "key 'dspy' is not supported: question paraphrasing with DSPy is not "
                "implemented; remove the 'dspy' section"
            )
        return data
