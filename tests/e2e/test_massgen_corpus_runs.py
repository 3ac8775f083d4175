"""Every MassGen example config that loads runs end to end, as a MassGen user would run it.

The corpus is ``tests/data/massgen-configs`` (MassGen's ``massgen/configs``, see its
README). Each config that loads is run once on the CLI's own embedded stack (a real
nats-server, the orchestrator and the tool gateway in-process, a worker process serving
every provider the corpus uses), all on one stack, a few at a time. Before a run, only
what points outside this machine is rewritten, as a user pointing MassGen at a test
double would:

- every agent's ``base_url`` goes to the fake server speaking its provider's protocol
  (OpenAI chat, OpenAI/xAI Responses, Anthropic Messages, Gemini generateContent), and
  its ``api_key`` becomes ``corpus-<config>-<agent>``, which says whose request it was;
- the MCP server MassGen's examples expect on ``localhost:8000`` is the project's test
  server on a free port; npm-launched servers run with npm offline (as in CI, which has
  no network), so they fail at once with npm's own reason;
- context paths and uploaded images the configs name relative to a MassGen checkout are
  made (empty, or a 1x1 image) in the runs' working folder, and so is the skills folder
  of a config with ``use_skills`` (holding one small skill, ``CORPUS_SKILL``);
- ``upload_files`` URLs go to a site on this machine serving a small real file of their
  kind (a PDF, a WAV), and the stack's gateway may fetch from it: the user's
  ``MASSGEN_GATEWAY_UPLOAD_URL_PRIVATE=1`` reaches the CLI's gateway. The Responses fake
  also keeps OpenAI's files and vector stores, for an agent searching its documents.

The agent behind every fake (``tests/support/fakes/corpus_agent.py``) answers from the
conversation; in its first coordination turn it calls one of the config's tools when
offered (a command, a custom tool, an MCP tool), so each run shows its tools work. Each
config then gets its own test: the run completed with the final answer; every agent that
took part was offered what its config names (workspace tools, ``execute_command``, custom
tools, each MCP server's tools, or the worker's clear error naming the server and its key
path) and the provider's own search and code tools in its requests; and the tool the agent
called returned what it should.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import re
import shutil
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from massgen_gateway.commands import CommandPolicy
from massgen_gateway.sandbox import sandbox_available
from massgen_gateway.tool_names import tool_visible
from massgen_proto.config import (
    BackendConfig,
    ConfigError,
    McpServerConfig,
    RunConfig,
    load_config,
)
from massgen_proto.events import FinalAnswer, RunEvent, RunFinished

from tests.support.fakes.corpus_agent import (
    ANSWER,
    PROBE_COMMAND,
    Offer,
    chat_behaviour,
    probe,
    provider_behaviour,
    read_anthropic,
    read_chat,
    read_gemini,
    read_responses,
)
from tests.support.fakes.mcp_http import serve_mcp_http
from tests.support.fakes.openai_files import FakeOpenAIFilesServer
from tests.support.fakes.openai_server import FakeOpenAIServer
from tests.support.fakes.provider_servers import FakeAnthropicServer, FakeGeminiServer
from tests.support.sample_files import FileSite, tiny_pdf, tiny_wav
from tests.support.video_files import tiny_video

pytestmark = pytest.mark.timeout(900)

CORPUS = Path(__file__).resolve().parents[1] / "data" / "massgen-configs"
QUESTION = "What is six times seven?"
LOCAL_MCP = "http://localhost:8000/mcp"
"""Where MassGen's streamable-http examples expect their MCP server."""
PARALLEL = 6
"""Runs at once on the one stack."""
RUN_LIMIT = 120.0
"""Seconds one run may take here (scripted models answer at once)."""


def _loadable() -> list[tuple[str, RunConfig]]:
    found = []
    for path in sorted(CORPUS.rglob("*.yaml")):
        try:
            found.append((path.relative_to(CORPUS).as_posix(), load_config(path)))
        except ConfigError:
            continue  # refusals are test_massgen_corpus.py's
    return found


CONFIGS = _loadable()


# -- the rewrite -----------------------------------------------------------------------


def protocol(backend_type: str, backend: dict[str, Any]) -> str:
    """Which fake a backend's calls reach (the worker's choice, ``call_plan``)."""
    if backend_type == "claude":
        return "anthropic"
    if backend_type == "gemini":
        return "gemini"
    builtin = any(backend.get(k) for k in ("enable_web_search", "enable_code_interpreter",
                                           "enable_code_execution"))  # fmt: skip
    summary = (backend.get("reasoning") or {}).get("summary") is not None
    # An OpenAI agent's documents are searched with OpenAI's file_search (Responses API).
    searches = any("file_path" in entry for entry in backend.get("upload_files") or ())
    if (backend_type == "openai" and (builtin or summary or searches)) or (
        backend_type == "grok" and backend.get("enable_web_search")
    ):
        return "responses"
    return "chat"


@dataclass
class Fakes:
    chat: FakeOpenAIServer
    anthropic: FakeAnthropicServer
    gemini: FakeGeminiServer
    responses: FakeOpenAIFilesServer
    mcp_url: str
    site: FileSite
    """Serves what the configs' ``upload_files`` URLs name (``site_path``)."""

    def base_url(self, kind: str) -> str:
        return {
            "chat": self.chat.base_url, "anthropic": self.anthropic.base_url,
            "gemini": self.gemini.base_url, "responses": self.responses.base_url,
        }[kind]  # fmt: skip

    def offers(self) -> list[Offer]:
        """Every request any fake received, read as what it offered."""
        found = [read_chat(r.headers, r.body) for r in self.chat.requests]
        found += [read_anthropic(r) for r in self.anthropic.requests]
        found += [read_gemini(r) for r in self.gemini.requests]
        found += [read_responses(r) for r in self.responses.requests]
        return found


def key_of(number: int, agent: int) -> str:
    return f"corpus-{number}-{agent}"


def rewritten(name: str, number: int, fakes: Fakes) -> dict[str, Any]:
    """The config as the user's file says, pointed at this machine's test doubles."""
    raw = yaml.safe_load((CORPUS / name).read_text(encoding="utf-8"))
    config = copy.deepcopy(raw)
    if "agent" in config:
        config["agents"] = [config.pop("agent")]
    for index, agent in enumerate(config["agents"]):
        backend = agent["backend"]
        backend["base_url"] = fakes.base_url(protocol(backend["type"], backend))
        backend["api_key"] = key_of(number, index)
        servers = backend.get("mcp_servers") or []
        if isinstance(servers, dict):
            servers = [{"name": k, **(v or {})} for k, v in servers.items()]
            backend["mcp_servers"] = servers
        for server in servers:
            if server.get("url") == LOCAL_MCP:
                server["url"] = fakes.mcp_url
            if server.get("command") == "npx":
                server["env"] = {**(server.get("env") or {}), "NPM_CONFIG_OFFLINE": "true"}
        for entry in backend.get("upload_files") or ():
            for key, source in entry.items():
                if str(source).lower().startswith(("http://", "https://")):
                    entry[key] = f"{fakes.site.origin}/{site_path(key, source)}"
    return config


def site_path(key: str, url: str) -> str:
    """Where the local site serves an upload URL: by its key, under its own file name."""
    return f"{key}/{PurePosixPath(urlsplit(url).path).name or 'upload'}"


def site_files() -> dict[str, bytes]:
    """A small real file of its kind for every upload URL of the corpus."""
    made = {"audio": tiny_wav, "file": tiny_pdf, "image": lambda: TINY_PNG}
    return {
        site_path(u.key, u.source): made[u.kind]()
        for _, config in CONFIGS for agent in config.agents
        for u in agent.backend.upload_files if u.is_url
    }  # fmt: skip


TINY_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGM4oaEBAALUARkFUI+kAAAAAElFTkSuQmCC"
)
"""A 1x1 image, for the files of a MassGen checkout a config uploads (the fakes do not
decode images, so a ``.jpg`` gets these bytes too)."""


CORPUS_SKILL = (
    b"---\nname: arithmetic-check\ndescription: Check a product by repeated addition.\n"
    b"---\n# Arithmetic check\nAdd the first number to itself as often as the second says.\n"
)
"""The one skill in the skills folder of a config with ``use_skills``."""


def make_checkout_files(config: RunConfig, cwd: Path) -> None:
    """The folders and files of a MassGen checkout the config names (context paths,
    uploaded images, a real tiny video, the skills folder), made small, as if run from
    the checkout (where ``openskills install`` would have filled the skills folder)."""
    wanted = [
        (entry.path, b"/* a context file */\n") for entry in config.orchestrator.context_paths
    ]
    coordination = config.orchestrator.coordination
    if coordination.use_skills:
        wanted.append((f"{coordination.skills_directory}/arithmetic/SKILL.md", CORPUS_SKILL))
    videos = set()
    for agent in config.agents:
        wanted += [(u.source, TINY_PNG) for u in agent.backend.upload_files
                   if "://" not in u.source]  # fmt: skip
        videos |= {u.source for u in agent.backend.upload_files if u.kind == "video"}
    for name, content in wanted:
        path = cwd / name
        if path.exists():
            continue
        if name in videos:  # a real video, whatever its name ("path-here")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(tiny_video())
        elif re.fullmatch(r"\.[a-z]{1,5}", path.suffix):  # styles.css, not v0.0.21-example
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        else:
            path.mkdir(parents=True, exist_ok=True)


# -- the runs -------------------------------------------------------------------------


@dataclass
class Outcome:
    """One config's run."""

    run_id: str = ""
    events: list[RunEvent] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0


async def _run_all(cwd: Path, fakes: Fakes) -> dict[str, Outcome]:
    from massgen_cli.client import follow_run
    from massgen_cli.embedded import EmbeddedStack, providers_of

    providers = list(dict.fromkeys(p for _, config in CONFIGS for p in providers_of(config)))
    stack = EmbeddedStack(providers, log_dir=cwd / "logs")
    outcomes: dict[str, Outcome] = {}
    gate = asyncio.Semaphore(PARALLEL)

    async def one(number: int, name: str) -> None:
        outcome = outcomes[name] = Outcome(run_id=f"corpus{number:03d}")
        async with gate:
            started = time.monotonic()
            try:
                await asyncio.wait_for(
                    follow_run(stack.client, QUESTION, rewritten(name, number, fakes),
                               outcome.events.append, run_id=outcome.run_id),
                    RUN_LIMIT,
                )  # fmt: skip
            except Exception as error:  # noqa: BLE001 - reported by the config's own test
                outcome.error = f"{type(error).__name__}: {error}"
            outcome.seconds = time.monotonic() - started

    await stack.start()
    try:
        await asyncio.gather(*(one(n, name) for n, (name, _) in enumerate(CONFIGS)))
    finally:
        await stack.stop()
    return outcomes


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    """The project's MCP test server over streamable-http (MassGen's examples expect one)."""
    with serve_mcp_http() as url:
        yield url


@dataclass
class Corpus:
    outcomes: dict[str, Outcome]
    offers: dict[str, list[Offer]]
    """API key -> what each of its requests offered."""
    tool_errors: dict[str, list[str]]
    """Run id -> the worker's tool-listing errors during it."""
    seconds: float
    fakes: Fakes


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, mcp_url: str) -> Iterator[Corpus]:
    cwd = tmp_path_factory.mktemp("corpus")
    for _, config in CONFIGS:
        make_checkout_files(config, cwd)
    servers = (FakeOpenAIServer(), FakeAnthropicServer(), FakeGeminiServer(),
               FakeOpenAIFilesServer())  # fmt: skip
    for server in servers:
        server.start()
    chat, claude, gem, resp = servers
    site = FileSite(site_files()).start()
    for model in {a.backend.model for _, c in CONFIGS for a in c.agents}:
        chat.behave(str(model), chat_behaviour)
    claude.behave(provider_behaviour(read_anthropic))
    gem.behave(provider_behaviour(read_gemini))
    resp.behave(provider_behaviour(read_responses))
    fakes = Fakes(chat, claude, gem, resp, mcp_url, site)
    started = time.monotonic()
    try:
        with pytest.MonkeyPatch.context() as patch:
            # The gateway's workspaces and the configs' relative paths live here.
            patch.chdir(cwd)
            # As a user pointing upload URLs at a site on their own machine would.
            patch.setenv("MASSGEN_GATEWAY_UPLOAD_URL_PRIVATE", "1")
            outcomes = asyncio.run(_run_all(cwd, fakes))
    finally:
        site.stop()
        for server in servers:
            server.stop()
    offers: dict[str, list[Offer]] = defaultdict(list)
    for offer in fakes.offers():
        offers[offer.key].append(offer)
    yield Corpus(outcomes, offers, _tool_errors(cwd / "logs" / "worker.log"),
                 time.monotonic() - started, fakes)  # fmt: skip
    for server in servers:
        assert not server.errors, server.errors  # no request went unanswered


def _tool_errors(log: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") == "tool_server_unavailable":
            found[str(entry.get("run_id"))].append(str(entry.get("error")))
    return found


# -- the checks -----------------------------------------------------------------------


def _offered(offers: list[Offer]) -> set[str]:
    return {name for offer in offers for name in offer.tools}


def _own_tools(offers: list[Offer]) -> str:
    return json.dumps([tool for offer in offers for tool in offer.provider_tools])


def _why(server: McpServerConfig) -> str:
    """The reason a stdio server of the corpus gives for not starting here: npm offline,
    or a Python module of a MassGen checkout (or a deliberately wrong one) missing."""
    if shutil.which(server.command or "") is None:
        return "cannot start"  # no such program on this machine
    if server.command == "npx":
        return "ENOTCACHED"
    args = list(server.args)
    module = args[args.index("-m") + 1] if "-m" in args else "?"
    return f"No module named '{module.split('.')[0]}'"


def _check_mcp_servers(
    backend: BackendConfig, index: int, offered: set[str], errors: list[str]
) -> None:
    """Each MCP server's tools were offered, or the worker said why not, by name."""
    for number, server in enumerate(backend.mcp_servers):
        prefix = f"mcp__{server.name}__"
        if any(n.startswith(prefix) for n in offered):
            continue
        lists = (backend.allowed_tools, backend.exclude_tools)
        if not tool_visible(server.name, "echo", *lists, server.allowed_tools,
                            server.exclude_tools):  # fmt: skip
            continue  # the config's own lists hide it
        named = f"MCP server '{server.name}' (agents[{index}].backend.mcp_servers[{number}])"
        assert server.type == "stdio", f"agent {index}: {prefix}* not offered"
        said = [e for e in errors if e.startswith(named)]
        assert said and all(_why(server) in e for e in said), (named, _why(server), errors)


def _check_provider_tools(backend: BackendConfig, offers: list[Offer]) -> None:
    """The provider's own search and code tools were in the requests, as it spells them."""
    sent = _own_tools(offers)
    if backend.enable_web_search:
        assert any(w in sent for w in ("web_search", "googleSearch", "enable_search")), sent
    if backend.enable_code_execution or backend.enable_code_interpreter:
        assert any(w in sent for w in ("code_interpreter", "code_execution", "codeExecution")), sent


def _check_probe(backend: BackendConfig, offered: set[str], results: str) -> None:
    """The tool the agent called (``corpus_agent.probe``) returned what it should."""
    called = probe(dict.fromkeys(offered, {}))
    if called is None or not called[1]:
        return
    move, shows = called
    if move.tool == "mcp__workspace__execute_command":
        # The config's own filters decide, as MassGen's would.
        policy = CommandPolicy.of(
            backend.command_line_allowed_commands, backend.command_line_blocked_commands, False
        )
        refusal = policy.refusal(PROBE_COMMAND)
        shows = f"command refused: {refusal}" if refusal else shows
        if backend.command_line_execution_mode == "docker" and not sandbox_available():
            # Isolation asked for and none here: refused before the filters are read.
            shows = "command_line_execution_mode: docker"
    assert shows in results, (move.tool, results[-2000:])


def _check_agent(config: RunConfig, index: int, offers: list[Offer], errors: list[str]) -> None:
    """What the agent's config names was offered, and the tool it called worked."""
    backend = config.agents[index].backend
    offered = _offered(offers)
    unfiltered = backend.allowed_tools is None and not backend.exclude_tools
    skills = config.orchestrator.coordination.use_skills
    workspace = (
        backend.cwd or backend.enable_mcp_command_line or config.orchestrator.context_paths
        or skills
    )  # fmt: skip
    if unfiltered and workspace:
        assert any(n.startswith("mcp__workspace__") for n in offered), sorted(offered)
    if skills:  # every request names the skill and where its SKILL.md is
        for offer in offers:
            assert "arithmetic-check: Check a product" in offer.system_text, offer.system_text
            assert "arithmetic/SKILL.md" in offer.system_text, offer.system_text
    if unfiltered and backend.enable_mcp_command_line:
        assert "mcp__workspace__execute_command" in offered, sorted(offered)
    for entry in backend.custom_tools:
        for name, function, _, _ in entry.entries():
            # Only the library's function exists here; MassGen's "wrong" examples name others.
            if unfiltered or function != "two_num_tool":
                assert (f"custom_tool__{name}" in offered) == (function == "two_num_tool")
        for function, counterpart in entry.counterparts():
            # MassGen's multimodal tool: its counterpart is offered in its place.
            served = {counterpart.tool, f"mcp__workspace__{counterpart.tool}"}
            assert served & offered, (function, sorted(offered))
    _check_mcp_servers(backend, index, offered, errors)
    _check_provider_tools(backend, offers)
    _check_probe(backend, offered, "\n".join(r for offer in offers for r in offer.results))


@pytest.mark.parametrize(("name", "config"), CONFIGS, ids=[name for name, _ in CONFIGS])
def test_config_runs_end_to_end(corpus: Corpus, name: str, config: RunConfig):
    outcome = corpus.outcomes[name]
    assert outcome.error is None, outcome.error
    finished = [e for e in outcome.events if isinstance(e, RunFinished)]
    assert finished and finished[-1].status == "completed", finished and finished[-1]
    final = [e for e in outcome.events if isinstance(e, FinalAnswer)]
    assert final and ANSWER in final[-1].content, final
    number = int(outcome.run_id.removeprefix("corpus"))
    taking_part = 1 if config.orchestrator.skip_coordination_rounds else len(config.agents)
    for index in range(len(config.agents)):
        offers = corpus.offers.get(key_of(number, index), [])
        if index >= taking_part:
            assert offers == [], f"agent {index} took part although coordination was skipped"
            continue
        assert offers, f"agent {index} made no model request"
        _check_agent(config, index, offers, corpus.tool_errors.get(outcome.run_id, []))


FILE_SEARCH = "basic/single/single_gpt5nano_file_search.yaml"
AUDIO = "basic/single/single_openrouter_audio_understanding.yaml"


def _served(corpus: Corpus, name: str) -> tuple[str, bytes]:
    """The run's API key and the bytes the site served for its one upload URL."""
    (upload,) = dict(CONFIGS)[name].agents[0].backend.upload_files
    path = site_path(upload.key, upload.source)
    assert path in corpus.fakes.site.asked  # fetched here, not from the internet
    key = key_of(int(corpus.outcomes[name].run_id.removeprefix("corpus")), 0)
    return key, corpus.fakes.site.files[path]


def test_file_search_config_searches_the_served_document(corpus: Corpus):
    key, pdf = _served(corpus, FILE_SEARCH)
    files = corpus.fakes.responses
    posted = [(p, b) for m, p, b in files.calls if m == "POST"]
    run_id = corpus.outcomes[FILE_SEARCH].run_id
    stores = [b for p, b in posted if p == "/v1/vector_stores" and b["name"] == f"massgen-{run_id}"]
    assert [b["file"] for p, b in posted if p == "/v1/files"] == [[("deep_research_blog.pdf", pdf)]]
    (store,) = stores
    (file_id,) = store["file_ids"]
    tools = [offer.provider_tools for offer in corpus.offers[key]]
    searched = [t for own in tools for t in own if t.get("type") == "file_search"]
    (store_id,) = {t["vector_store_ids"][0] for t in searched}
    assert all({"type": "file_search", "vector_store_ids": [store_id]} in t for t in tools), tools
    # The store offered is the one made: the worker waited for its indexing.
    assert ("GET", f"/v1/vector_stores/{store_id}", None) in files.calls
    deleted = {p for m, p, _ in files.calls if m == "DELETE"}
    assert deleted >= {f"/v1/vector_stores/{store_id}", f"/v1/files/{file_id}"}, deleted
    assert files.files == {} and files.stores == {}


def test_audio_understanding_config_sends_the_served_sound(corpus: Corpus):
    key, sound = _served(corpus, AUDIO)
    part = {"type": "input_audio",
            "input_audio": {"data": base64.b64encode(sound).decode(), "format": "wav"}}  # fmt: skip
    requests = [r.body for r in corpus.fakes.chat.requests
                if read_chat(r.headers, r.body).key == key]  # fmt: skip
    assert requests
    for body in requests:
        task = [m for m in body["messages"] if m["role"] == "user"][-1]
        assert part in task["content"], task


def test_the_corpus_runs_in_reasonable_time(corpus: Corpus):
    # Every loadable config, a few at a time on one stack: a few seconds each at most.
    assert len(corpus.outcomes) == len(CONFIGS) >= 120
    assert corpus.seconds < 4 * len(CONFIGS), f"{corpus.seconds:.0f} s for {len(CONFIGS)}"
