"""Memory on a real file and through the real gateway: notes saved, searched (full text with
hostile input, vectors from an embeddings double), forgotten, exported, and never shared
between two tenants' gateways."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tenant_gateway.memory import (
    MEMORY_FILE,
    EmbeddingsClient,
    MemoryStore,
    NoteNotFound,
    with_memories,
)
from tests.doubles.embeddings_upstream import EmbeddingsUpstream, embeddings_upstream
from tests.integration.gateway.conftest import GatewayFactory, problem_shape

HOSTILE = [
    '"',
    'say "hi',
    "NEAR(cat dog)",
    "cat NEAR dog",
    "*",
    "c*",
    "(cat",
    "cat) OR (",
    "text:cat",
    "AND",
    "-cat",
    "^cat",
    "'; DROP TABLE notes; --",
    "",
]


@pytest.fixture
def embeddings() -> Iterator[EmbeddingsUpstream]:
    with embeddings_upstream() as upstream:
        yield upstream


@pytest.fixture
async def memory(tmp_path: Path) -> AsyncIterator[MemoryStore]:
    store = MemoryStore(tmp_path / MEMORY_FILE)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def vector_store(path: Path, upstream: EmbeddingsUpstream) -> MemoryStore:
    store = MemoryStore(path, EmbeddingsClient(upstream.url, "embed-model"))
    await store.open()
    return store


async def test_full_text_search_ranks_better_matches_first(memory: MemoryStore) -> None:
    await memory.add("the cat sleeps on the sofa")
    best = await memory.add("my cat is called Tom; Tom the cat likes fish")
    await memory.add("dentist appointment on Tuesday", tags=["health"])
    found = await memory.search("cat Tom")
    assert found[0].id == best.id
    assert len(found) == 2
    assert all(n.score is not None and n.score > 0 for n in found)
    assert [n.text for n in await memory.search("health")] == ["dentist appointment on Tuesday"]


@pytest.mark.parametrize("query", HOSTILE)
async def test_search_with_hostile_input_is_just_text(memory: MemoryStore, query: str) -> None:
    cat = await memory.add("cat and dog (near each other) say \"hi\" with 'quotes'")
    found = await memory.search(query)
    assert [n.id for n in found] in ([], [cat.id])
    assert len(await memory.latest()) == 1  # still there: nothing was injected


async def test_words_of_hostile_input_still_find_their_notes(memory: MemoryStore) -> None:
    cat = await memory.add("the cat")
    assert [n.id for n in await memory.search("NEAR(cat*")] == [cat.id]
    assert await memory.search("NEAR(") == []


async def test_a_forgotten_note_is_gone_from_listing_and_search(memory: MemoryStore) -> None:
    note = await memory.add("buy oat milk")
    await memory.delete(note.id)
    assert await memory.latest() == []
    assert await memory.search("oat milk") == []
    with pytest.raises(NoteNotFound):
        await memory.delete(note.id)


async def test_vector_search_finds_notes_close_in_meaning(
    tmp_path: Path, embeddings: EmbeddingsUpstream
) -> None:
    store = await vector_store(tmp_path / MEMORY_FILE, embeddings)
    try:
        car = await store.add("my car is a blue Volvo")
        await store.add("the kitty sleeps all day")
        found = await store.search("automobile?")
        assert [n.id for n in found] == [car.id]  # no word in common: only vectors see it
        assert embeddings.requests[-1]["model"] == "embed-model"
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / MEMORY_FILE) as db:
        blobs = db.execute("SELECT length(embedding), embedding_model FROM notes").fetchall()
    assert blobs == [(64 * 4, "embed-model")] * 2


async def test_a_failing_embeddings_endpoint_leaves_full_text_search(
    tmp_path: Path, embeddings: EmbeddingsUpstream
) -> None:
    embeddings.error_status = 503
    store = await vector_store(tmp_path / MEMORY_FILE, embeddings)
    try:
        car = await store.add("my car is a blue Volvo")
        assert [n.id for n in await store.search("blue car")] == [car.id]
        assert await store.search("automobile") == []
        assert len(embeddings.requests) == 3
    finally:
        await store.close()


async def test_relevant_memories_are_added_after_the_system_messages(memory: MemoryStore) -> None:
    await memory.add("the user's daughter is called Ada")
    await memory.add("the wifi password is in the drawer")
    messages = [
        {"role": "system", "content": "be kind"},
        {"role": "user", "content": "what was my daughter's name?"},
    ]
    prompt = await with_memories(messages, memory)
    assert prompt[0] == messages[0]
    assert prompt[1]["role"] == "system"
    assert "Ada" in prompt[1]["content"]
    assert "wifi" not in prompt[1]["content"]
    assert prompt[2:] == messages[1:]
    unrelated = [{"role": "user", "content": "hello there"}]
    assert await with_memories(unrelated, memory) == unrelated


async def test_two_tenants_gateways_never_see_each_others_notes(
    gateway_factory: GatewayFactory,
) -> None:
    with gateway_factory() as first, gateway_factory() as second:
        async with first.client() as one, second.client() as two:
            saved = await one.post("/memory", json={"text": "secret plan: ship Friday"})
            assert saved.status_code == 201
            note = saved.json()
            assert (await two.post("/memory", json={"text": "other plan"})).status_code == 201
            others = (await two.get("/memory", params={"q": "secret ship Friday"})).json()
            assert others["data"] == []
            assert [n["text"] for n in (await two.get("/memory")).json()["data"]] == ["other plan"]
            assert (await two.delete(f"/memory/{note['id']}")).status_code == 404
            export = (await two.get("/memory/export")).text
            assert "secret" not in export
            mine = (await one.get("/memory", params={"q": "secret"})).json()["data"]
            assert [n["id"] for n in mine] == [note["id"]]


async def test_the_memory_api_saves_lists_forgets_and_exports(
    gateway_factory: GatewayFactory,
) -> None:
    with gateway_factory() as gw:
        async with gw.client() as client:
            texts = ["first note", "second note", "third note"]
            for text in texts:
                response = await client.post("/memory", json={"text": text, "tags": ["t"]})
                assert response.status_code == 201
            note = response.json()
            assert note["text"] == "third note"
            assert (note["tags"], note["source"], note["object"]) == (["t"], "api", "memory.note")
            assert note["id"].startswith("mem_")
            listed = (await client.get("/memory", params={"limit": "2"})).json()
            assert [n["text"] for n in listed["data"]] == ["third note", "second note"]
            assert (await client.delete(f"/memory/{note['id']}")).status_code == 204
            export = await client.get("/memory/export")
            assert export.headers["content-type"].startswith("application/x-ndjson")
            lines = [json.loads(line) for line in export.text.splitlines()]
            assert [n["text"] for n in lines] == ["first note", "second note"]
            assert export.text.endswith("\n")
            gone = await client.delete(f"/memory/{note['id']}")
            assert gone.status_code == 404
            problem_shape(gone.json(), 404, "note_not_found")


@pytest.mark.parametrize("query", HOSTILE)
async def test_the_memory_api_searches_hostile_text_safely(
    gateway_factory: GatewayFactory, query: str
) -> None:
    with gateway_factory() as gw:
        async with gw.client() as client:
            await client.post("/memory", json={"text": "cat and dog near each other"})
            response = await client.get("/memory", params={"q": query})
            assert response.status_code == 200
            assert all("cat" in n["text"] for n in response.json()["data"])


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"not json", "not a note"),
        (b'{"tags": []}', "text"),
        (b'{"text": "x", "colour": "red"}', "colour"),
        (b'{"text": "   "}', "some text"),
        (b'{"text": "x", "tags": "one"}', "tags"),
    ],
)
async def test_a_bad_note_is_a_problem_saying_why(
    gateway_factory: GatewayFactory, body: bytes, words: str
) -> None:
    with gateway_factory() as gw:
        async with gw.client() as client:
            response = await client.post(
                "/memory", content=body, headers={"content-type": "application/json"}
            )
            assert response.status_code == 400
            problem_shape(response.json(), 400, "bad_note")
            assert words in response.json()["detail"]
            for limit in ("lots", "0", "100000"):
                bad = await client.get("/memory", params={"limit": limit})
                assert bad.status_code == 400
                problem_shape(bad.json(), 400, "bad_note")


async def test_the_memory_api_needs_the_gateway_key(gateway_factory: GatewayFactory) -> None:
    with gateway_factory() as gw:
        async with gw.client(key=None) as anonymous, gw.client(key="tgk_wrong") as wrong:
            for client in (anonymous, wrong):
                for method, path in (
                    ("GET", "/memory"),
                    ("POST", "/memory"),
                    ("DELETE", "/memory/mem_x"),
                    ("GET", "/memory/export"),
                ):
                    response = await client.request(method, path, json={"text": "x"})
                    assert response.status_code == 401, (method, path)
        async with gw.client() as client:
            assert (await client.get("/memory")).json()["data"] == []


async def test_the_gateway_searches_by_meaning_when_an_embedding_model_is_set(
    gateway_factory: GatewayFactory, embeddings: EmbeddingsUpstream
) -> None:
    env = {
        "TENANTRY_GATEWAY_EMBEDDINGS_URL": embeddings.url,
        "TENANTRY_GATEWAY_EMBEDDINGS_MODEL": "embed-model",
    }
    with gateway_factory(env=env) as gw:
        async with gw.client() as client:
            await client.post("/memory", json={"text": "my car is a blue Volvo"})
            await client.post("/memory", json={"text": "the kitty sleeps all day"})
            found = (await client.get("/memory", params={"q": "automobile"})).json()["data"]
            assert [n["text"] for n in found] == ["my car is a blue Volvo"]
            assert found[0]["score"] > 0
    assert [r["input"] for r in embeddings.requests] == [
        ["my car is a blue Volvo"],
        ["the kitty sleeps all day"],
        ["automobile"],
    ]
