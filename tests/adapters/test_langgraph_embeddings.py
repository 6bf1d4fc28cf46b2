"""TollwayEmbeddings under LangChain's own vector store and retriever, inside a real
LangGraph graph, against the loopback fake provider (OpenAI's /embeddings): the right
document comes back, every embedding call is a priced ledger row of kind ``embedding``
attributed to the node and the user, and the retrieved text reaches the chat model."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, TypedDict

import pytest

pytest.importorskip("langgraph")

from langchain_core.vectorstores import InMemoryVectorStore
from langgraph.graph import END, START, StateGraph

import tollway
from tests.adapters._lg_pai_fakes import KEY, records, script
from tests.adapters._media_fakes import (
    EMBED_TARGET,
    MediaScript,
    text_vector,
    token_count,
)
from tests.conftest import Driver
from tests.fakes.server import FakeProvider
from tollway.adapters.langgraph import TollwayChatModel, TollwayEmbeddings
from tollway.core.cost.budgets import Budgets
from tollway.core.cost.ledger import Ledger
from tollway.core.errors import BudgetExceededError
from tollway.core.stores.open import open_ledger

DOCS = [
    "Oslo is the capital of Norway and sits on a fjord.",
    "The Eiffel Tower stands in Paris, France.",
    "Tollway prices every model call in nano-dollars.",
]
QUESTION = "What is the capital of Norway?"
RUN_ID = uuid.UUID("6f1c1b2e-8d3a-4c55-9e0f-2b7a4d9c1e10")


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    store = open_ledger(tmp_path / "ledger.db")
    yield store
    store.close()


def embeddings(fake: FakeProvider, ledger: Any, **kw: Any) -> TollwayEmbeddings:
    return TollwayEmbeddings(model=EMBED_TARGET, api_key=KEY, api_base=fake.url, ledger=ledger,
                             **kw)


def expected_cost(texts: list[str]) -> Decimal:
    """genai-prices' own price of embedding ``texts`` (the fake counts a token a word)."""
    from genai_prices import Usage as GenaiUsage
    from genai_prices import calc_price

    return calc_price(GenaiUsage(input_tokens=token_count(texts)), "text-embedding-3-small",
                      provider_id="openai").total_price


def usd(nanos: int | None) -> Decimal:
    assert nanos is not None, "an embedding row without a cost"
    return Decimal(nanos) / 10**9


class State(TypedDict, total=False):
    question: str
    context: str
    answer: str


def test_a_retriever_over_tollway_embeddings_finds_the_right_document_and_meters_it(
    driver: Driver, fake: FakeProvider, ledger: Ledger
) -> None:
    media = MediaScript(fake)
    openai = script("openai")
    media.add(openai.text("Oslo."))
    emb = embeddings(fake, ledger, project="search")
    chat = TollwayChatModel(model=openai.target, api_key=KEY, api_base=fake.url, ledger=ledger)

    with tollway.attribute(user="alice"):
        if driver.is_async:
            store = asyncio.run(InMemoryVectorStore.afrom_texts(DOCS, emb))
        else:
            store = InMemoryVectorStore.from_texts(DOCS, emb)
        graph = _graph(store, chat, driver.is_async)
        config: Any = {"run_id": RUN_ID}
        out = (asyncio.run(graph.ainvoke({"question": QUESTION}, config=config))
               if driver.is_async else graph.invoke({"question": QUESTION}, config=config))

    assert out["context"] == DOCS[0]
    assert out["answer"] == "Oslo."
    assert media.embedded == [DOCS, [QUESTION]]  # documents once, then the query
    chat_body = json.dumps(fake.requests[-1].json)
    assert "fjord" in chat_body and "Eiffel" not in chat_body  # the retrieved text went on
    rows = records(ledger)
    assert [(r.kind, r.node, r.user) for r in rows] == [
        ("embedding", None, "alice"),  # indexing, outside the graph
        ("embedding", "retrieve", "alice"),
        ("model", "answer", "alice"),
    ]
    docs_row, query_row = rows[0], rows[1]
    assert docs_row.project == query_row.project == "search"
    assert docs_row.framework == "langchain" and query_row.framework == "langgraph"
    assert docs_row.usage.input_tokens == token_count(DOCS)
    assert usd(docs_row.cost_nanos) == expected_cost(DOCS) > 0
    assert usd(query_row.cost_nanos) == expected_cost([QUESTION]) > 0
    assert query_row.trace_id == rows[2].trace_id == RUN_ID.hex  # one graph run, one trace


def _graph(store: InMemoryVectorStore, chat: TollwayChatModel, is_async: bool) -> Any:
    retriever = store.as_retriever(search_kwargs={"k": 1})

    def retrieve(state: State) -> State:
        return {"context": retriever.invoke(state["question"])[0].page_content}

    async def aretrieve(state: State) -> State:
        return {"context": (await retriever.ainvoke(state["question"]))[0].page_content}

    async def aanswer(state: State) -> State:
        reply = await chat.ainvoke(f"Context: {state['context']}\nQuestion: {state['question']}")
        return {"answer": str(reply.content)}

    def answer(state: State) -> State:
        reply = chat.invoke(f"Context: {state['context']}\nQuestion: {state['question']}")
        return {"answer": str(reply.content)}

    graph = StateGraph(State)
    graph.add_node("retrieve", aretrieve if is_async else retrieve)
    graph.add_node("answer", aanswer if is_async else answer)
    graph.add_edge(START, "retrieve")
    graph.add_edge("retrieve", "answer")
    graph.add_edge("answer", END)
    return graph.compile()


def test_queries_and_documents_are_sent_with_their_input_type_and_dimensions(
    driver: Driver, fake: FakeProvider
) -> None:
    media = MediaScript(fake)
    emb = embeddings(fake, False, dimensions=64, encoding_format="float")
    if driver.is_async:
        vectors = asyncio.run(emb.aembed_documents(["a fjord", "a tower"]))
        query = asyncio.run(emb.aembed_query("fjord"))
    else:
        vectors = emb.embed_documents(["a fjord", "a tower"])
        query = emb.embed_query("fjord")
    assert vectors == [text_vector("a fjord"), text_vector("a tower")]
    assert query == text_vector("fjord")
    bodies = [r.json for r in fake.requests]
    assert [b["input"] for b in bodies] == [["a fjord", "a tower"], ["fjord"]]
    assert all(b["dimensions"] == 64 and b["encoding_format"] == "float" for b in bodies)
    assert all(b["model"] == "text-embedding-3-small" for b in bodies)
    assert media.embedded == [["a fjord", "a tower"], ["fjord"]]


def test_embedding_no_documents_makes_no_call(driver: Driver, fake: FakeProvider) -> None:
    emb = embeddings(fake, False)
    out = asyncio.run(emb.aembed_documents([])) if driver.is_async else emb.embed_documents([])
    assert out == []
    assert fake.requests == []


def test_a_token_budget_stops_the_embedding_before_the_provider(
    driver: Driver, fake: FakeProvider, ledger: Ledger
) -> None:
    MediaScript(fake)
    budgets = Budgets([{"scope": {"user": "bob"}, "unit": "tokens", "limit": 5,
                        "period": "day"}])
    emb = embeddings(fake, ledger, user="bob", guards=[budgets])
    long_text = "fjord " * 200
    with pytest.raises(BudgetExceededError):
        if driver.is_async:
            asyncio.run(emb.aembed_documents([long_text]))
        else:
            emb.embed_documents([long_text])
    assert fake.requests == []


def test_tollway_embeddings_without_a_model_is_a_config_error() -> None:
    with pytest.raises(tollway.errors.ConfigError, match="needs a model"):
        TollwayEmbeddings()
