"""Commands and custom tools, the pure parts: MassGen's filters, when commands may run at
all, the sandbox's view of the host, output capture, schemas from signatures, and the
config keys."""

from __future__ import annotations

import json
from typing import Literal

import pytest
from massgen_gateway._tool_host import as_text, describe, parse_docstring
from massgen_gateway.commands import CommandPolicy, execution_mode, format_outcome
from massgen_gateway.custom_tools import LIBRARY, in_library, specs
from massgen_gateway.execution import Capture, ExecOutcome
from massgen_gateway.sandbox import Mount, confined
from massgen_gateway.settings import GatewaySettings
from massgen_proto.config import ConfigError, parse_config
from massgen_proto.config.tool_library import SHIPPED_FUNCTIONS


def test_filters_match_from_the_start_like_massgen():
    policy = CommandPolicy.of(["python .*", "pytest .*"], ["python .*secret"], host=False)
    assert policy.refusal("python test.py") is None
    assert "matches none of the allowed patterns" in policy.refusal("ls; python x")
    assert "blocked pattern 'python .*secret'" in policy.refusal("python read_secret.py")
    assert "empty" in policy.refusal("   ")
    assert CommandPolicy().refusal("anything at all") is None


def test_massgen_default_refusals_apply_only_outside_the_sandbox():
    host, sandboxed = CommandPolicy(host=True), CommandPolicy(host=False)
    for command in ("sudo ls", "rm -rf / --no-preserve-root", "dd if=/dev/zero of=x",
                    "chmod 777 x", ":(){ :|:& };:"):  # fmt: skip
        assert "not allowed for commands run on the host" in host.refusal(command)
        assert sandboxed.refusal(command) is None  # the sandbox contains it instead


@pytest.mark.parametrize(
    ("bwrap", "deployment", "unsandboxed", "mode", "expect"),
    [
        (True, "none", False, "local", "sandbox"),
        (True, "bwrap", False, "docker", "sandbox"),
        (False, "none", True, "local", "host"),
        (False, "none", True, "docker", "command_line_execution_mode: docker"),
        (False, "bwrap", False, "local", "only in its sandbox"),
        (False, "none", False, "local", "MASSGEN_GATEWAY_UNSANDBOXED_EXEC"),
        ("bwrap: No permissions", "bwrap", False, "local", "bwrap: No permissions"),
        ("bwrap: No permissions", "none", True, "local", "host"),
    ],
)
def test_when_commands_may_run(bwrap, deployment, unsandboxed, mode, expect):
    got = execution_mode(
        bwrap=bwrap, deployment_sandbox=deployment, unsandboxed_exec=unsandboxed, run_mode=mode
    )
    assert expect in got


def test_unsandboxed_execution_is_never_allowed_with_the_bwrap_sandbox():
    with pytest.raises(ValueError, match="never runs commands outside the sandbox"):
        GatewaySettings(sandbox="bwrap", unsandboxed_exec=True)
    s = GatewaySettings.from_env({"MASSGEN_GATEWAY_EXEC_RO_PATHS": "/opt/a:/opt/b",
                                  "MASSGEN_GATEWAY_UNSANDBOXED_EXEC": "1"})  # fmt: skip
    assert s.exec_ro_paths == ["/opt/a", "/opt/b"] and s.unsandboxed_exec


def test_the_sandbox_shows_only_granted_paths(tmp_path):
    ws, ctx = tmp_path / "ws", tmp_path / "ctx"
    line = confined(
        ["/bin/sh", "-c", "true"], mounts=[Mount(str(ctx)), Mount(str(ws), writable=True)],
        workdir=str(ws), env={"PATH": "/usr/bin"}, tmp_bytes=1 << 20, max_processes=32,
    )  # fmt: skip
    text = " ".join(line)
    assert f"--bind {ws} {ws}" in text and f"--ro-bind-try {ctx} {ctx}" in text
    assert "--ro-bind / /" not in text and "/etc/shadow" not in text and "/root" not in text
    assert "--unshare-all" in text and "--share-net" not in text and "--clearenv" in text
    assert "--remount-ro /" in text
    # /tmp (a tmpfs) comes before the workspace inside it.
    assert text.index("--tmpfs /tmp") < text.index(f"--bind {ws}")
    assert line[-3:] == ["/bin/sh", "-c", "true"]


def test_capture_keeps_head_and_tail():
    capture = Capture(10)
    for _ in range(100):
        capture.feed(b"0123456789")
    text = capture.text()
    assert text.startswith("01234") and text.endswith("56789")
    assert "[... 990 bytes omitted ...]" in text
    small = Capture(100)
    small.feed(b"hello")
    assert small.text() == "hello"


def test_outcome_text():
    done = ExecOutcome(exit_code=2, stdout="out", stderr="", seconds=0.5)
    lines = format_outcome("make", done, 60).splitlines()
    assert lines[:2] == ["$ make", "Exit code 2 after 0.50 s."]
    killed = ExecOutcome(exit_code=None, stdout="", stderr="", seconds=9, timed_out=True)
    assert "Killed after 9 s (timeout)" in format_outcome("sleep 99", killed, 9)


def test_docstring_styles():
    summary, params = parse_docstring(
        """Do a thing.

        More about it.

        Args:
            a (int): The a,
                on two lines.
            b: The b.

        Returns:
            Nothing.
        """
    )
    assert summary == "Do a thing.\n\nMore about it."
    assert params == {"a": "The a, on two lines.", "b": "The b."}
    _, numpy = parse_docstring("Sum.\n\nParameters\n----------\nx : int\n    The x.\n")
    assert numpy == {"x": "The x."}
    _, rest = parse_docstring("Sum.\n\n:param x: The x.\n:returns: y")
    assert rest == {"x": "The x."}


def test_schema_from_signature():
    def tool(
        name: str,
        size: float = 1.5,
        kind: Literal["a", "b"] = "a",
        opts: dict[str, int] | None = None,
        agent_cwd: str = "",
        secret: str = "",
    ) -> str:
        """Make a thing.

        Args:
            name: Its name.
        """
        return name

    schema = describe(tool, "custom_tool__tool", None, {"secret"})
    assert schema == {
        "name": "custom_tool__tool",
        "description": "Make a thing.",
        "parameters": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "Its name."},
                "size": {"type": "number", "default": 1.5},
                "kind": {"enum": ["a", "b"], "type": "string", "default": "a"},
                "opts": {"type": "object", "additionalProperties": {"type": "integer"},
                         "default": None},
            },
            "required": ["name"],
        },
    }  # fmt: skip
    assert describe(tool, "t", "Given.", set())["description"] == "Given."


def test_results_as_text():
    class Block:
        def __init__(self, data):
            self.data = data

    class Result:
        def __init__(self, *blocks):
            self.output_blocks = list(blocks)

    assert as_text(Result(Block("a"), Block("b"))) == "a\nb"
    assert as_text({"x": 1}) == json.dumps({"x": 1})
    assert as_text("plain") == "plain"
    assert as_text([Result(Block("partial")), Result(Block("final"))]) == "final"


BACKEND = {"type": "chatcompletion", "model": "m", "base_url": "http://127.0.0.1:9/v1"}


def test_config_keys_are_typed_not_sent_to_the_provider():
    config = parse_config({"agent": {"id": "a", "backend": {
        **BACKEND, "cwd": "ws", "enable_mcp_command_line": True,
        "command_line_execution_mode": "docker", "command_line_allowed_commands": ["python .*"],
        "command_line_docker_memory_limit": "1g", "command_line_docker_image": "img",
        "custom_tools": [{"name": ["add"], "path": "t.py", "function": ["two_num_tool"],
                          "category": "math", "description": "Adds."}],
    }}})  # fmt: skip
    backend = config.agents[0].backend
    assert backend.passthrough_params() == {}
    assert backend.command_memory_bytes == 1 << 30
    assert backend.custom_tools[0].entries() == [("add", "two_num_tool", "Adds.", {})]
    assert any("command_line_docker_image" in w for w in config.warnings())


@pytest.mark.parametrize(
    ("backend", "where", "words"),
    [
        ({"command_line_docker_network_mode": "overlay"}, "command_line_docker_network_mode",
         "not one of 'none', 'bridge', 'host'"),
        ({"command_line_blocked_commands": ["("]}, "command_line_blocked_commands",
         "not a regular expression"),
        ({"command_line_execution_mode": "ssh"}, "command_line_execution_mode", "local"),
        ({"custom_tools": [{"path": "massgen/tool/_multimodal_tools/understand_image.py",
                            "function": "understand_image"}]}, "custom_tools[0]",
         "read_multimodal_files"),
        ({"custom_tools": [{"path": "./massgen/tool/_computer_use/computer_use_tool.py",
                            "function": "computer_use"}]}, "custom_tools[0]", "desktop"),
        ({"custom_tools": [{"path": "massgen/tool/_new/x.py", "function": "x"}]},
         "custom_tools[0]", "built-in library has: two_num_tool"),
        ({"custom_tools": [{"path": "p", "function": ["f", "g"], "name": ["a"]}]},
         "custom_tools[0]", "one per function"),
        ({"custom_tools": [{"path": "p", "function": "f"}, {"path": "q", "function": "f"}]},
         "custom_tools", "duplicate custom tool names: f"),
        ({"command_line_docker_enable_sudo": True}, "backend", "without sudo"),
    ],
)  # fmt: skip
def test_bad_command_and_custom_tool_keys_are_named(backend, where, words):
    with pytest.raises(ConfigError) as excinfo:
        parse_config({"agent": {"id": "a", "backend": {**BACKEND, **backend}}})
    assert where in str(excinfo.value) and words in str(excinfo.value)


def test_sudo_credentials_and_packages_are_refused_only_when_on():
    config = parse_config({"agent": {"id": "a", "backend": {
        **BACKEND, "command_line_docker_enable_sudo": False,
        "command_line_docker_credentials": None, "command_line_docker_packages": {},
    }}})  # fmt: skip
    assert config.warnings() == [
        f"agents[0].backend.{key}: ignored (off or empty)"
        for key in ("command_line_docker_enable_sudo", "command_line_docker_credentials",
                    "command_line_docker_packages")
    ]  # fmt: skip


def test_massgen_library_tools_are_served_from_the_built_in_library(tmp_path):
    for function, relative in SHIPPED_FUNCTIONS.items():
        assert function in (LIBRARY / relative).read_text()
    config = parse_config({"agent": {"id": "a", "backend": {**BACKEND, "custom_tools": [
        {"name": ["two_num_tool"], "function": ["two_num_tool"]},
        {"name": "sum", "function": "two_num_tool", "path": "massgen/tool/_basic/_two_num_tool.py"},
        {"function": "wrong_two_num_tool"},
        {"name": "bad", "function": "wrong_two_num_tool",
         "path": "massgen/tool/_basic/_two_num_tool.py"},
        {"function": "mine", "path": "tools/mine.py", "default_params": {"k": 1}},
    ]}}})  # fmt: skip
    assert config.warnings() == [
        "agents[0].backend.custom_tools[2].function: 'wrong_two_num_tool' is not in the built-in "
        "tool library (two_num_tool): the agent runs without it, as MassGen does when it "
        "cannot load a custom tool",
        "agents[0].backend.custom_tools[3].function: 'wrong_two_num_tool' is not in the built-in "
        "tool library (two_num_tool): the agent runs without it, as MassGen does when it "
        "cannot load a custom tool",
        "agents[0].backend.custom_tools[4].default_params: ignored (MassGen does not read it "
        "either)",
    ]
    tools = specs(config.agents[0].backend.custom_tools, 0, str(tmp_path))
    library = str(LIBRARY / "_basic" / "_two_num_tool.py")
    assert [(t.name, t.path) for t in tools] == [
        ("two_num_tool", library), ("sum", library), ("wrong_two_num_tool", ""),
        ("bad", library), ("mine", str(tmp_path / "tools" / "mine.py")),
    ]  # fmt: skip
    assert [in_library(t) for t in tools] == [True, True, False, True, False]
