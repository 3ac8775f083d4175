"""Pure parts of massgen_api: tokens, SSE framing, OpenAI translation, teams, metrics, settings."""

from __future__ import annotations

import hashlib
import json

import pytest
from massgen_api.auth import TokenTable, hash_token
from massgen_api.metrics import Metrics
from massgen_api.models import ChatMessageIn
from massgen_api.openai_compat import MessagesError, StreamTranslator, split_messages
from massgen_api.settings import ApiSettings
from massgen_api.sse import event_kind, frame, parse_last_event_id
from massgen_api.teams import load_teams
from massgen_proto import events as ev
from massgen_proto.config import ConfigError
from pydantic import ValidationError

RUN = "r1"


def agent_event(cls, agent="a1", label="agent1", **fields):
    return cls(run_id=RUN, agent=agent, label=label, **fields)


def test_tokens_are_stored_hashed_and_looked_up():
    table = TokenTable({hash_token("s3cret"): "acme", hash_token("other"): "globex"})
    assert hash_token("s3cret") == hashlib.sha256(b"s3cret").hexdigest()
    assert table.tenant_for("s3cret") == "acme"
    assert table.tenant_for("other") == "globex"
    assert table.tenant_for("s3cret ") is None and table.tenant_for("") is None
    assert table.enabled and not TokenTable({}).enabled


def test_settings_reject_unhashed_tokens_and_read_the_environment(tmp_path):
    with pytest.raises(ValidationError, match="sha256 hex digest"):
        ApiSettings(tokens={"plain-token": "acme"})
    digest = hash_token("t")
    file = tmp_path / "tokens.yaml"
    file.write_text(f"{hash_token('u')}: globex\n")
    settings = ApiSettings.from_env(
        {"NATS_URL": "nats://n:4222", "MASSGEN_API_PORT": "9000",
         "MASSGEN_API_TOKENS": f"acme:{digest}", "MASSGEN_API_TOKENS_FILE": str(file)},
        host="0.0.0.0",
    )  # fmt: skip
    assert (settings.nats_url, settings.port, settings.host) == ("nats://n:4222", 9000, "0.0.0.0")
    assert settings.tokens == {digest: "acme", hash_token("u"): "globex"}
    assert settings.auth_enabled and not ApiSettings().auth_enabled
    with pytest.raises(ValueError, match="tenant:sha256hex"):
        ApiSettings.from_env({"MASSGEN_API_TOKENS": "no-colon"})
    assert not settings.allow_command_network  # commands with network: the operator's call
    assert ApiSettings.from_env({"MASSGEN_API_ALLOW_COMMAND_NETWORK": "1"}).allow_command_network


def test_the_api_fails_closed_without_tokens():
    from massgen_api.app import create_app

    with pytest.raises(ValueError, match="no API tokens configured.*MASSGEN_API_SINGLE_USER"):
        create_app(ApiSettings())
    ApiSettings(tokens={hash_token("t"): "acme"}).check_auth()
    ApiSettings(single_user=True).check_auth()
    assert ApiSettings.from_env({"MASSGEN_API_SINGLE_USER": "1"}).single_user
    assert not ApiSettings.from_env({"MASSGEN_API_SINGLE_USER": "0"}).single_user


def test_the_endpoint_policy_is_on_unless_one_user_owns_the_machine():
    """Unset MASSGEN_PROVIDER_ENDPOINTS turns the policy off only in single-user mode: an
    API serving tenants refuses foreign hosts for the organisation's keys by default."""
    shared = ApiSettings(tokens={hash_token("t"): "acme"}).endpoint_policy
    problem = shared.problem("openai", "https://attacker.example/v1", own_key=False)
    assert problem and "MASSGEN_PROVIDER_ENDPOINTS" in problem
    assert shared.problem("openai", "https://attacker.example/v1", own_key=True) is None
    assert shared.problem("openai", None, own_key=False) is None
    assert not ApiSettings(single_user=True).endpoint_policy.enabled
    listed = ApiSettings.from_env(
        {
            "MASSGEN_API_TOKENS": f"acme:{hash_token('t')}",
            "MASSGEN_PROVIDER_ENDPOINTS": "vllm=m:8000",
        }
    ).endpoint_policy
    assert listed.problem("vllm", "http://m:8000/v1", own_key=False) is None


def test_massgen_api_without_tokens_refuses_to_start():
    import subprocess
    import sys

    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("MASSGEN_API")}
    proc = subprocess.run(
        [sys.executable, "-m", "massgen_api", "--port", "1"], env=env, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "no API tokens configured" in proc.stderr and "--single-user" in proc.stderr


def test_sse_frames_and_last_event_id():
    data = ev.RunFinished(run_id=RUN, status="completed").model_dump_json().encode()
    assert event_kind(data) == "run_finished"
    assert frame(7, "run_finished", data) == b"id: 7\nevent: run_finished\ndata: " + data + b"\n\n"
    assert parse_last_event_id("42") == 42
    assert parse_last_event_id(None) == parse_last_event_id("") == 0
    assert (
        parse_last_event_id("-3") == parse_last_event_id("x") == parse_last_event_id("9" * 30) == 0
    )


def test_split_messages():
    msgs = [ChatMessageIn(role="system", content="Be brief."),
            ChatMessageIn(role="user", content=[{"type": "text", "text": "Hi "},
                                                {"type": "text", "text": "there"}]),
            ChatMessageIn(role="assistant", content="Hello."),
            ChatMessageIn(role="user", content="  What now? ")]  # fmt: skip
    question, history = split_messages(msgs)
    assert question == "What now?"
    assert [(m.role, m.content) for m in history] == [
        ("system", "Be brief."),
        ("user", "Hi there"),
        ("assistant", "Hello."),
    ]
    with pytest.raises(MessagesError) as excinfo:
        split_messages(
            [ChatMessageIn(role="user", content="q"), ChatMessageIn(role="assistant", content="a")]
        )
    assert excinfo.value.path == "body.messages[1].role"
    with pytest.raises(MessagesError) as excinfo:
        split_messages([ChatMessageIn(role="user", content="   ")])
    assert excinfo.value.path == "body.messages[0].content"


def test_stream_translator_streams_only_the_presentation_unless_reasoning():
    events = [
        agent_event(ev.TurnStarted, turn_id="t1", phase="coordinate", number=1),
        agent_event(ev.Chunk, turn_id="t1", channel="content", text="thinking"),
        agent_event(ev.AnswerAccepted, version="agent1.1", content="A"),
        agent_event(ev.VoteAccepted, target="agent1", target_agent="a1", reason="best"),
        agent_event(ev.PresentationStarted),
        agent_event(ev.TurnStarted, turn_id="t2", phase="present", number=2),
        agent_event(ev.Chunk, turn_id="t2", channel="content", text="Final "),
        agent_event(ev.Chunk, turn_id="t2", channel="content", text="words"),
        agent_event(ev.TokenUsage, turn_id="t2", prompt_tokens=5, completion_tokens=2),
        agent_event(ev.FinalAnswer, content="Final words"),
        ev.RunFinished(run_id=RUN, status="completed", winner="a1"),
    ]
    plain = StreamTranslator()
    deltas = [d for e in events for d in plain.feed(e)]
    assert deltas == [{"content": "Final "}, {"content": "words"}]
    assert plain.done and plain.error is None and plain.final == "Final words"
    assert plain.tokens == {"a1": {"prompt_tokens": 5, "completion_tokens": 2}}

    verbose = StreamTranslator(reasoning=True)
    deltas = [d for e in events for d in verbose.feed(e)]
    reasoning = "".join(d.get("reasoning_content", "") for d in deltas)
    assert "[agent1] thinking" in reasoning and "votes for agent1: best" in reasoning
    assert "".join(d.get("content", "") for d in deltas) == "Final words"


def test_reasoning_shows_the_answer_being_written_votes_and_tool_calls():
    def chunk(channel, text, turn="t1"):
        return agent_event(ev.Chunk, turn_id=turn, channel=channel, text=text)

    events = [
        agent_event(ev.TurnStarted, turn_id="t1", phase="coordinate", number=1),
        chunk("tool_args", json.dumps({"id": "c", "name": "mcp__fs__read", "delta": "{"})),
        chunk("tool_call", json.dumps({"id": "c", "name": "mcp__fs__read",
                                       "arguments": {"path": "notes.txt"}})),
        chunk("tool_result", json.dumps({"id": "c", "name": "mcp__fs__read",
                                         "content": "Canberra since 1913"})),
        chunk("answer", "Canberra "),
        chunk("answer", "is the capital."),
        chunk("tool_call", json.dumps({"id": "n", "name": "new_answer",
                                       "arguments": {"content": "Canberra is the capital."}})),
        chunk("vote", json.dumps({"target": "agent2", "reason": "clearer"})),
        agent_event(ev.ToolDenied, turn_id="t1", tool="mcp__fs__write", path="/etc/x",
                    resolved="/etc/x", rule="outside_roots", phase="coordinate"),
    ]  # fmt: skip
    verbose = StreamTranslator(reasoning=True)
    deltas = [d for e in events for d in verbose.feed(e)]
    reasoning = "".join(d.get("reasoning_content", "") for d in deltas)
    assert '[agent1] → mcp__fs__read({"path": "notes.txt"})' in reasoning
    assert "[agent1] ← mcp__fs__read: Canberra since 1913" in reasoning
    assert "[agent1] ✎ Canberra [agent1] ✎ is the capital." in reasoning
    assert "new_answer" not in reasoning and '"delta"' not in reasoning
    assert "[agent1] voting for agent2: clearer" in reasoning
    assert "⛔ mcp__fs__write denied /etc/x (outside_roots)" in reasoning
    assert [d for e in events for d in StreamTranslator().feed(e)] == []


def test_stream_translator_falls_back_and_reports_failures():
    fallback = StreamTranslator()
    out = fallback.feed(agent_event(ev.FinalAnswer, content="stored answer", fallback=True))
    assert out == [{"content": "stored answer"}]
    failed = StreamTranslator()
    failed.feed(ev.RunFinished(run_id=RUN, status="failed", message="every agent failed"))
    assert failed.done and failed.error == "run failed: every agent failed"


def test_teams_load_and_name_the_bad_file(tmp_path):
    (tmp_path / "good.yaml").write_text(
        "description: a good team\nagent:\n  id: x\n  backend: {type: openai, model: gpt-4o-mini}\n"
    )
    (tmp_path / "notes.txt").write_text("ignored")
    teams = load_teams(tmp_path)
    assert list(teams) == ["good"]
    assert teams["good"].description == "a good team"
    assert teams["good"].agents == [{"id": "x", "type": "openai", "model": "gpt-4o-mini"}]
    assert "description" not in teams["good"].config
    (tmp_path / "bad.yaml").write_text("agents:\n  - id: y\n    backend: {type: nope, model: m}\n")
    with pytest.raises(ConfigError) as excinfo:
        load_teams(tmp_path)
    assert excinfo.value.problems[0][0] == "agents[0].backend.type"
    assert "bad.yaml" in str(excinfo.value)
    assert load_teams(None) == {}


def test_metrics_render_runs_turns_tokens_and_queues():
    metrics = Metrics()
    created = ev.RunCreated(
        run_id=RUN, question="q", deadline=0,
        agents=[ev.AgentInfo(id="a1", label="agent1", provider="openai", model="m")],
    )  # fmt: skip
    metrics.observe(created)
    metrics.observe(
        agent_event(ev.TurnStarted, turn_id="t1", phase="coordinate", number=1, ts=10.0)
    )
    metrics.observe(agent_event(ev.TokenUsage, turn_id="t1", prompt_tokens=7, completion_tokens=3))
    metrics.observe(agent_event(ev.AnswerAccepted, version="agent1.1", content="A", ts=11.5))
    text = metrics.render({"openai": (4, 1)})
    assert 'massgen_runs{status="running"} 1' in text
    assert 'massgen_turn_seconds_bucket{le="1"} 0' in text
    assert 'massgen_turn_seconds_bucket{le="2.5"} 1' in text
    assert "massgen_turn_seconds_count 1" in text
    assert 'massgen_tokens_total{provider="openai",kind="prompt"} 7' in text
    assert 'massgen_queue_depth{provider="openai"} 4' in text
    assert 'massgen_turns_in_flight{provider="openai"} 1' in text
    metrics.observe(ev.RunFinished(run_id=RUN, status="completed"))
    assert 'massgen_runs{status="completed"} 1' in metrics.render({})
