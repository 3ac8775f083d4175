"""Client mistakes get 4xx with the JSON path of the problem; operations routes are open."""

from __future__ import annotations

import pytest

from tests.support.fakes.agents import study_agent

pytestmark = pytest.mark.timeout(120)


def problem(response, status: int) -> tuple[str | None, list[str]]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"}
    return body["error"]["path"], [d["path"] for d in body["detail"]]


def test_bad_bodies_get_422_with_paths(api):
    with api.client() as client:
        bad_type = {"agents": [{"id": "x", "backend": {"type": "nonsense", "model": "m"}}]}
        path, _ = problem(client.post("/v1/runs", json={"config": bad_type, "question": "q"}), 422)
        assert path == "body.config.agents[0].backend.type"

        second = {"agents": [
            {"id": "a", "backend": {"type": "openai", "model": "gpt-4o-mini"}},
            {"id": "b", "backend": {"type": "openai", "model": "gpt-4o-mini", "temperature": 9}},
        ]}  # fmt: skip
        path, _ = problem(client.post("/v1/runs", json={"config": second, "question": "q"}), 422)
        assert path == "body.config.agents[1].backend.temperature"

        path, _ = problem(client.post("/v1/runs", json={"team": "trio"}), 422)
        assert path == "body.question"
        path, _ = problem(client.post("/v1/runs", json={"team": "trio", "question": ""}), 422)
        assert path == "body.question"
        path, _ = problem(client.post("/v1/runs", json={"question": "q", "colour": 1}), 422)
        assert path is not None and path.startswith("body")
        _, paths = problem(client.post("/v1/runs", json={"question": "q"}), 422)
        assert paths == ["body"]
        path, _ = problem(client.post("/v1/runs", json={"config": [1, 2], "question": "q"}), 422)
        assert path == "body.config"
        response = client.post(
            "/v1/runs",
            content=b'{"question": "q", "team": ',
            headers={"content-type": "application/json"},
        )
        problem(response, 422)
        problem(
            client.post("/v1/runs", content=b"[]", headers={"content-type": "application/json"}),
            422,
        )
        path, _ = problem(client.get("/v1/runs", params={"limit": 0}), 422)
        assert path == "query.limit"
        path, _ = problem(
            client.post("/v1/chat/completions", json={"model": "trio", "messages": []}), 422
        )
        assert path == "body.messages"


def test_unknown_team_is_404_and_big_bodies_413(api):
    with api.client() as client:
        path, _ = problem(client.post("/v1/runs", json={"team": "ghost", "question": "q"}), 404)
        assert path == "body.team"
        big = "x" * (api.settings.max_body_bytes + 10)
        problem(client.post("/v1/runs", json={"team": "trio", "question": big}), 413)

        def chunks():  # no Content-Length: the streamed size counts
            for _ in range(40):
                yield b"x" * 65536

        response = client.post(
            "/v1/runs", content=chunks(), headers={"content-type": "application/json"}
        )
        problem(response, 413)
        problem(client.get("/v1/nothing-here"), 404)
        problem(client.delete("/v1/runs"), 405)


def test_operations_routes_are_open(api):
    api.fake.behave("s1", study_agent("forty-two", "agent1", presentation="42"))
    with api.client() as client:
        run_id = client.post("/v1/runs", json={"team": "solo", "question": "q?"}).json()["id"]
        with client.stream("GET", f"/v1/runs/{run_id}/events") as response:
            for _ in response.iter_lines():
                pass
    with api.client(None) as anonymous:
        assert anonymous.get("/healthz").json() == {"status": "ok"}
        ready = anonymous.get("/readyz")
        assert ready.status_code == 200 and ready.json()["ready"] is True
        metrics = anonymous.get("/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        text = metrics.text
        assert 'massgen_runs{status="completed"} 1' in text
        assert 'massgen_queue_depth{provider="chatcompletion"} 0' in text
        assert 'massgen_tokens_total{provider="chatcompletion",kind="completion"}' in text
        assert "massgen_turn_seconds_count 3" in text  # answer, vote, presentation
        spec = anonymous.get("/openapi.json").json()
        create = spec["paths"]["/v1/runs"]["post"]
        schema_ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        schema = spec["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
        assert schema["examples"][0]["team"] == "demo"
        assert "bearer" in str(spec["components"]["securitySchemes"]).lower()
        page = anonymous.get("/")
        assert page.status_code == 200 and "MassGen" in page.text
        assert anonymous.get("/static/app.js").status_code == 200


def test_a_keyed_provider_pointed_at_a_foreign_host_is_refused(tmp_path, nats_url, fake_model):
    """The organisation's key never reaches a host the tenant chose: 422 before the run."""
    from tests.support.api_stack import start_api_stack

    stack, stop = start_api_stack(
        tmp_path, nats_url, fake_model, provider_endpoints="openai=api.openai.com"
    )
    try:
        with stack.client() as client:
            config = {
                "agents": [
                    {
                        "id": "a",
                        "backend": {
                            "type": "openai",
                            "model": "gpt-4o-mini",
                            "base_url": fake_model.base_url,
                        },
                    }
                ]
            }
            response = client.post("/v1/runs", json={"config": config, "question": "q"})
            path, _ = problem(response, 422)
            assert path == "body.config.agents[0].backend.base_url"
            assert "organisation's key" in response.json()["error"]["message"]
            assert fake_model.requests == []  # nothing was sent, least of all a key
            config["agents"][0]["backend"]["api_key"] = "sk-tenant-own"  # their key: allowed
            response = client.post("/v1/runs", json={"config": config, "question": "q"})
            assert response.status_code == 201, response.text
            client.post(f"/v1/runs/{response.json()['id']}/cancel")
    finally:
        stop()


def test_commands_with_network_need_the_operators_consent(tmp_path, nats_url, fake_model):
    """MassGen's ``command_line_docker_network_mode: bridge`` loads (the CLI runs it), but
    an API refuses it with 422 naming the key unless its operator allows it."""
    from tests.support.api_stack import start_api_stack

    def config(mode: str) -> dict:
        backend = {"type": "chatcompletion", "model": "m1", "base_url": fake_model.base_url,
                   "cwd": "ws", "enable_mcp_command_line": True}  # fmt: skip
        return {"agents": [{"id": "a", "backend": backend},
                           {"id": "b", "backend": {**backend,
                                                   "command_line_docker_network_mode": mode}}]}  # fmt: skip

    refusing, stop = start_api_stack(tmp_path / "refusing", nats_url, fake_model)
    try:
        with refusing.client() as client:
            response = client.post("/v1/runs", json={"config": config("bridge"), "question": "q"})
            path, paths = problem(response, 422)
            assert path == "body.config.agents[1].backend.command_line_docker_network_mode"
            assert paths == [path]
            assert "commands with network ('bridge') are not allowed by this API" in response.text
            assert "MASSGEN_API_ALLOW_COMMAND_NETWORK" in response.text
            session = client.post("/v1/sessions", json={"config": config("host")})
            assert problem(session, 422)[0] == path
            assert fake_model.requests == []
    finally:
        stop()
    _accepted_when_allowed(tmp_path, nats_url, fake_model, config("bridge"),
                           allow_command_network=True)  # fmt: skip


def test_stdio_servers_outside_the_catalog_are_refused(tmp_path, nats_url, fake_model):
    """Over the API a run may not start a command of its own choosing on the gateway."""
    from tests.support.api_stack import start_api_stack

    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("servers:\n  filesystem:\n    command: npx\n    args: [server-fs]\n")
    stack, stop = start_api_stack(tmp_path, nats_url, fake_model, mcp_catalog=str(catalog))
    try:
        with stack.client() as client:
            evil = {"name": "shell", "type": "stdio", "command": "/bin/sh", "args": ["-c", "id"]}
            config = {"agents": [{"id": "a", "backend": {
                "type": "chatcompletion", "model": "m1", "base_url": fake_model.base_url,
                "mcp_servers": [{"name": "filesystem", "type": "stdio"}, evil]}}]}  # fmt: skip
            response = client.post("/v1/runs", json={"config": config, "question": "q"})
            path, _ = problem(response, 422)
            assert path == "body.config.agents[0].backend.mcp_servers[1]"
            assert "not in this deployment's catalog (approved: filesystem)" in response.text
    finally:
        stop()


def test_paths_on_the_server_need_the_operators_consent(tmp_path, nats_url, fake_model):
    """A tenant's config may not hand its agents the gateway's files: a workspace at
    ``/``, a context path, a custom tool file are refused with 422 naming each key, for runs
    and sessions alike, unless the operator allows host paths."""
    from tests.support.api_stack import start_api_stack

    backend = {"type": "chatcompletion", "model": "m1", "base_url": fake_model.base_url}
    hostile = {
        "agents": [{"id": "a", "backend": {**backend, "cwd": "/"}},
                   {"id": "b", "backend": {**backend, "cwd": "../../other-run",
                                           "custom_tools": [{"path": "/srv/t.py",
                                                             "function": "f"}]}}],
        "orchestrator": {"context_paths": [{"path": "/var/run/secrets", "permission": "read"}]},
    }  # fmt: skip
    # No worker: accepted runs are never played.
    refusing, stop = start_api_stack(tmp_path / "refusing", nats_url, fake_model, workers=False)
    try:
        with refusing.client() as client:
            response = client.post("/v1/runs", json={"config": hostile, "question": "q"})
            _, paths = problem(response, 422)
            assert paths == [
                "body.config.agents[0].backend.cwd",
                "body.config.agents[1].backend.cwd",
                "body.config.agents[1].backend.custom_tools[0].path",
                "body.config.orchestrator.context_paths[0]",
            ]
            assert "MASSGEN_API_ALLOW_HOST_PATHS" in response.text
            assert problem(client.post("/v1/sessions", json={"config": hostile}), 422)[1] == paths
            relative = {"agents": [{"id": "a", "backend": {**backend, "cwd": "ws"}}]}
            response = client.post("/v1/runs", json={"config": relative, "question": "q"})
            assert response.status_code == 201, response.text
            client.post(f"/v1/runs/{response.json()['id']}/cancel")
    finally:
        stop()
    _accepted_when_allowed(tmp_path, nats_url, fake_model, hostile, allow_host_paths=True)


def _accepted_when_allowed(tmp_path, nats_url, fake_model, config, **allowed) -> None:
    """An API whose operator allows what ``config`` asks for accepts the run. No worker:
    the run is only accepted, never played (it is cancelled at once)."""
    from tests.support.api_stack import start_api_stack

    allowing, stop = start_api_stack(
        tmp_path / "allowing", nats_url, fake_model, workers=False, **allowed
    )
    try:
        with allowing.client() as client:
            response = client.post("/v1/runs", json={"config": config, "question": "q"})
            assert response.status_code == 201, response.text
            client.post(f"/v1/runs/{response.json()['id']}/cancel")
    finally:
        stop()
