"""The CLI's key check before a run reads the variables the worker will read."""

from __future__ import annotations

from massgen_cli.teams import missing_keys


def _config(*backends):
    return {"agents": [{"id": f"a{i}", "backend": b} for i, b in enumerate(backends)]}


def test_keys_follow_the_base_url_host_and_the_alternative_names(monkeypatch):
    for name in ("CEREBRAS_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "MOONSHOT_API_KEY",
                 "KIMI_API_KEY"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    config = _config(
        {"type": "chatcompletion", "model": "m", "base_url": "https://api.cerebras.ai/v1"},
        {"type": "gemini", "model": "gemini-2.5-flash"},
        {"type": "moonshot", "model": "kimi-k2"},
        {"type": "chatcompletion", "model": "m", "base_url": "http://localhost:8000/v1"},
        {
            "type": "chatcompletion",
            "model": "m",
            "base_url": "https://api.cerebras.ai/v1",
            "api_key": "own",
        },
    )
    assert missing_keys(config) == [
        "agent 'a0' (chatcompletion) needs CEREBRAS_API_KEY to be set",
        "agent 'a1' (gemini) needs GEMINI_API_KEY or GOOGLE_API_KEY to be set",
        "agent 'a2' (moonshot) needs MOONSHOT_API_KEY or KIMI_API_KEY to be set",
    ]
    monkeypatch.setenv("GOOGLE_API_KEY", "g")
    monkeypatch.setenv("KIMI_API_KEY", "k")
    monkeypatch.setenv("CEREBRAS_API_KEY", "c")
    assert missing_keys(config) == []
