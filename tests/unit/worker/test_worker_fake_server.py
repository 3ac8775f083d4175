"""The scripted fake model fails from both ends, and speaks plain OpenAI."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.support.fakes import FakeOpenAIServer, answer, error, text, vote_first


def post(server, body):
    request = urllib.request.Request(
        server.base_url + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as failure:
        return failure.code, failure.read().decode()


def test_unused_steps_and_unexpected_calls_are_reported():
    with FakeOpenAIServer() as server:
        server.script("a", [text("one"), text("two")])
        assert post(server, {"model": "a", "messages": []})[0] == 200
        status, body = post(server, {"model": "b", "messages": []})
        assert status == 500 and "unexpected model call" in body
        with pytest.raises(AssertionError) as excinfo:
            server.assert_complete()
    message = str(excinfo.value)
    assert "a: 1 scripted step(s) never requested" in message
    assert "unexpected model call for model 'b'" in message


def test_non_streaming_tool_call_and_error():
    with FakeOpenAIServer() as server:
        server.script("a", [answer("42"), error(429, "slow down")])
        status, body = post(server, {"model": "a", "messages": [{"role": "user", "content": "q"}]})
        message = json.loads(body)["choices"][0]["message"]
        assert message["tool_calls"][0]["function"] == {
            "name": "new_answer",
            "arguments": '{"content": "42"}',
        }
        status, body = post(server, {"model": "a", "messages": []})
        assert status == 429 and json.loads(body)["error"]["message"] == "slow down"
        server.assert_complete()


def test_streaming_format_and_callable_step():
    tools = [
        {
            "type": "function",
            "function": {
                "name": "vote",
                "parameters": {
                    "type": "object",
                    "properties": {"agent_id": {"type": "string", "enum": ["agent2"]}},
                },
            },
        }
    ]
    with FakeOpenAIServer() as server:
        server.script("a", [vote_first("fine")])
        status, body = post(
            server,
            {
                "model": "a",
                "messages": [],
                "tools": tools,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        )
        lines = [line for line in body.split("\n\n") if line]
        assert lines[-1] == "data: [DONE]"
        chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
        arguments = "".join(
            c["choices"][0]["delta"]
            .get("tool_calls", [{}])[0]
            .get("function", {})
            .get("arguments", "")
            for c in chunks[:-1]
        )
        assert json.loads(arguments) == {"agent_id": "agent2", "reason": "fine"}
        assert server.requests[0].tools == tools
        server.assert_complete()


def test_a_request_abandoned_before_its_body_is_no_model_call():
    """A call cancelled between its headers and its body (a restarted turn) is a client
    that went away, not a request for model None."""
    import socket
    import time
    from urllib.parse import urlsplit

    with FakeOpenAIServer() as server:
        url = urlsplit(server.base_url)
        with socket.create_connection((url.hostname, url.port), timeout=5) as client:
            client.sendall(
                f"POST {url.path}/chat/completions HTTP/1.1\r\nHost: x\r\n"
                "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n".encode()
            )
        time.sleep(0.2)
        assert server.requests == [] and server.errors == []
        server.script("a", [text("one")])
        assert post(server, {"model": "a", "messages": []})[0] == 200
        server.assert_complete()
