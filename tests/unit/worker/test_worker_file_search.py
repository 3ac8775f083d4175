"""File search: what litellm sends OpenAI to upload documents, make a vector store, search
it in the Responses API, and delete it all (a fake OpenAI server on loopback)."""

from __future__ import annotations

import pytest
from massgen_proto.messages import BackendSpec
from massgen_worker.call_plan import plan_call
from massgen_worker.file_search import (
    FILE_EXPIRY_SECONDS,
    Document,
    FileSearchStores,
    file_search_tool,
)
from massgen_worker.llm import LiteLLMModel
from massgen_worker.media import MediaError

from tests.support.fakes.openai_files import FakeOpenAIFilesServer
from tests.support.fakes.provider_servers import responses

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


@pytest.fixture
def openai_files():
    with FakeOpenAIFilesServer() as server:
        yield server
        server.assert_complete()


def backend_of(server: FakeOpenAIFilesServer) -> BackendSpec:
    return BackendSpec(type="openai", model="gpt-5-nano", base_url=server.base_url, api_key="k-1")


async def test_documents_make_one_store_per_run_and_agent_then_are_deleted(openai_files):
    stores = FileSearchStores(poll_seconds=0.01)
    backend = backend_of(openai_files)
    reads = 0

    async def documents() -> list[Document]:
        nonlocal reads
        reads += 1
        return [Document("deep_research_blog.pdf", "application/pdf", PDF)]

    store = await stores.store_for("run1", "a1", backend, documents)
    again = await stores.store_for("run1", "a1", backend, documents)
    assert again == store and reads == 1 and stores.runs() == {"run1"}

    (upload, create, retrieve) = openai_files.calls
    method, path, form = upload
    assert (method, path) == ("POST", "/v1/files")
    assert form["file"] == [("deep_research_blog.pdf", PDF)]
    assert form["purpose"] == "assistants"
    assert form["expires_after[anchor]"] == "created_at"
    assert form["expires_after[seconds]"] == str(FILE_EXPIRY_SECONDS)
    (file_id,) = openai_files.files
    assert create == (
        "POST",
        "/v1/vector_stores",
        {
            "name": "massgen-run1",
            "file_ids": [file_id],
            "expires_after": {"anchor": "last_active_at", "days": 1},
            "chunking_strategy": None,
            "metadata": None,
        },
    )  # fmt: skip  (litellm sends the nulls)
    assert retrieve == ("GET", f"/v1/vector_stores/{store}", None)

    await stores.close_run("other-run")  # nothing of its own: no call
    assert len(openai_files.calls) == 3
    await stores.close_run("run1")
    assert openai_files.calls[3:] == [
        ("DELETE", f"/v1/vector_stores/{store}", None),
        ("DELETE", f"/v1/files/{file_id}", None),
    ]
    assert openai_files.stores == {} and openai_files.files == {} and stores.runs() == set()


async def test_the_responses_request_carries_the_file_search_tool(openai_files):
    backend = backend_of(openai_files)
    tools = [file_search_tool("vs_42")]
    plan = plan_call(backend, [{"role": "user", "content": "Summarize"}], tools, None)
    assert plan.params["model"] == "openai/responses/gpt-5-nano"
    openai_files.script([responses.reply(responses.text("It is about deep research."))])
    text = ""
    async for delta in LiteLLMModel(backend).stream(
        [{"role": "user", "content": "Summarize the document."}], tools, None
    ):
        text += delta.content or ""
    assert text == "It is about deep research."
    (request,) = openai_files.requests
    assert request.path == "/v1/responses"
    assert request.body["tools"] == [{"type": "file_search", "vector_store_ids": ["vs_42"]}]
    assert request.headers["authorization"] == "Bearer k-1"


async def test_a_refused_upload_names_the_provider_error_and_leaves_nothing(openai_files):
    stores = FileSearchStores(poll_seconds=0.01)
    backend = backend_of(openai_files)

    async def documents() -> list[Document]:
        return [
            Document("a.pdf", "application/pdf", PDF),
            Document("b.pdf", "application/pdf", PDF),
        ]

    # The second file's store call fails: the first file is deleted again.
    original = openai_files.store_action

    def failing(method: str, path: str, body: object) -> tuple[int, dict]:
        if path == "/v1/vector_stores" and method == "POST":
            with openai_files._lock:
                openai_files.calls.append((method, path, body))
            return 400, {"error": {"message": "vector stores are disabled for this project"}}
        return original(method, path, body)

    openai_files.store_action = failing  # type: ignore[method-assign]
    with pytest.raises(MediaError, match="vector stores are disabled for this project"):
        await stores.store_for("run2", "a1", backend, documents)
    assert openai_files.files == {} and stores.runs() == set()
    deletes = [c for c in openai_files.calls if c[0] == "DELETE"]
    assert len(deletes) == 2
