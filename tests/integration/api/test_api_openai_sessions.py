"""Teams as OpenAI models (official client), multi-turn sessions, teams listing."""

from __future__ import annotations

import openai
import pytest

from tests.support.api_stack import ALICE, BOB
from tests.support.fakes.agents import study_agent

pytestmark = pytest.mark.timeout(120)

PRESENTATION = "Canberra is the capital of Australia, as all three agents agree."


def script_trio(fake) -> None:
    answers = ("Canberra.", "It is Canberra, in the ACT.", "Australia's capital: Canberra.")
    for model, mine in zip(("m1", "m2", "m3"), answers, strict=True):
        # Paced like a real provider: text is published in batches of 50 ms, so a model
        # streaming everything at once would be one or two deltas.
        fake.behave(model, study_agent(mine, "agent1", presentation=PRESENTATION,
                                       token_delay=0.03))  # fmt: skip


def client_for(api, token: str = "alice-token") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{api.url}/v1", api_key=token, max_retries=0, timeout=60)


def test_models_lists_the_teams(api):
    models = client_for(api).models.list()
    assert sorted(m.id for m in models.data) == ["slow", "solo", "trio"]
    with api.client() as client:
        teams = client.get("/v1/teams").json()["data"]
        trio = next(t for t in teams if t["name"] == "trio")
        assert trio["description"] == "three fake agents"
        assert [a["id"] for a in trio["agents"]] == ["a1", "a2", "a3"]
        assert "api_key" not in str(teams) and "base_url" not in str(teams)


def test_chat_completion_non_streaming(api):
    script_trio(api.fake)
    reply = client_for(api).chat.completions.create(
        model="trio", messages=[{"role": "user", "content": "What is the capital of Australia?"}]
    )
    assert reply.object == "chat.completion"
    assert reply.model == "trio"
    assert reply.choices[0].message.content == PRESENTATION
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.completion_tokens > 0
    # The run behind it is an ordinary run of the caller's tenant.
    with api.client() as client:
        run_id = reply.id.removeprefix("chatcmpl-")
        assert client.get(f"/v1/runs/{run_id}").json()["final_answer"] == PRESENTATION


def test_chat_completion_streaming_presentation_only(api):
    script_trio(api.fake)
    stream = client_for(api).chat.completions.create(
        model="trio",
        messages=[{"role": "user", "content": "What is the capital of Australia?"}],
        stream=True,
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == PRESENTATION
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3  # streamed
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert not any((c.choices[0].delta.model_extra or {}).get("reasoning_content") for c in chunks)


def test_chat_completion_streaming_with_agents_as_reasoning(api):
    script_trio(api.fake)
    stream = client_for(api).chat.completions.create(
        model="trio",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is the capital of Australia?"},
        ],
        stream=True,
        extra_body={"massgen_reasoning": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reasoning = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks
    )
    assert text == PRESENTATION
    assert "[agent1]" in reasoning and "[agent3]" in reasoning
    assert "votes for agent1" in reasoning and "accepted" in reasoning


def test_chat_completion_history_reaches_the_agents(api):
    api.fake.behave("s1", study_agent("Blue.", "agent1", presentation="Blue, again."))
    reply = client_for(api).chat.completions.create(
        model="solo",
        messages=[
            {"role": "user", "content": "Name a colour."},
            {"role": "assistant", "content": "Purple-ish earlier reply."},
            {"role": "user", "content": "Another one?"},
        ],
    )
    assert reply.choices[0].message.content == "Blue, again."
    first = api.fake.requests_for("s1")[0]
    contents = " ".join(str(m.get("content")) for m in first.messages)
    assert "Purple-ish earlier reply." in contents and "Another one?" in contents


def test_chat_completion_errors(api):
    client = client_for(api)
    with pytest.raises(openai.NotFoundError) as excinfo:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert excinfo.value.body["path"] == "body.model"
    with pytest.raises(openai.UnprocessableEntityError) as excinfo:
        client.chat.completions.create(
            model="trio", messages=[{"role": "assistant", "content": "I talk last"}]
        )
    assert excinfo.value.body["path"] == "body.messages[0].role"
    with pytest.raises(openai.AuthenticationError):
        client_for(api, "wrong").models.list()


def test_session_turns_see_the_history(api):
    api.fake.behave("s1", study_agent("Paris.", "agent1", presentation="Paris."))
    with api.client() as client:
        session = client.post("/v1/sessions", json={"team": "solo"})
        assert session.status_code == 201, session.text
        session_id = session.json()["id"]
        first = client.post(
            f"/v1/sessions/{session_id}/turns",
            json={"question": "Capital of France?", "wait": True},
        )
        assert first.status_code == 201, first.text
        assert first.json()["final_answer"] == "Paris."
        assert first.json()["session_id"] == session_id
        calls_before = len(api.fake.requests_for("s1"))

        # The second turn through POST /v1/runs with session_id (same thing).
        second = client.post(
            "/v1/runs", json={"session_id": session_id, "question": "And its population?"}
        )
        assert second.status_code == 201, second.text
        run_id = second.json()["id"]
        # A third turn while the second runs is refused.
        busy = client.post(f"/v1/sessions/{session_id}/turns", json={"question": "too soon"})
        assert busy.status_code == 409, busy.text
        with client.stream("GET", f"/v1/runs/{run_id}/events") as response:
            for _ in response.iter_lines():
                pass
        request = api.fake.requests_for("s1")[calls_before]
        roles = [(m["role"], m.get("content")) for m in request.messages]
        assert ("assistant", "Paris.") in roles
        assert any(role == "user" and content == "Capital of France?" for role, content in roles)

        view = client.get(f"/v1/sessions/{session_id}").json()
        assert [t["question"] for t in view["turns"]] == [
            "Capital of France?",
            "And its population?",
        ]
        assert [t["answer"] for t in view["turns"]] == ["Paris.", "Paris."]
        assert all(t["status"] == "completed" for t in view["turns"])
    with api.client(BOB) as other:
        assert other.get(f"/v1/sessions/{session_id}").status_code == 403
        assert (
            other.post(f"/v1/sessions/{session_id}/turns", json={"question": "mine?"}).status_code
            == 403
        )
    with api.client(ALICE) as client:
        assert client.get("/v1/sessions/doesnotexist").status_code == 404
        assert client.post("/v1/sessions", json={"team": "ghost"}).status_code == 404
        assert client.post("/v1/sessions", json={}).status_code == 422
