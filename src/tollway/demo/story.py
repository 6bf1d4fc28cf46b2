"""The demo's story: real agents from four frameworks on swapped models, one ledger.

Org ``acme`` has two projects. Alice (project ``research``) runs a CrewAI crew whose
researcher is on ``fast`` and whose writer is on ``smart``, a Pydantic AI agent with
structured output, and a model that uses the MCP time server. Bob (project
``support``) runs a LangGraph graph (planner on ``fast``, writer on ``smart``), then
keeps asking the smart model until his daily budget stops him. Then the demo clock jumps
to Saturday night: alice's next call to ``smart`` is rerouted to ``fast`` by the
allowed-hours rule. The spend table at the end is read back from the ledger.

Every step runs on tollway's real paths (routing, budgets, ledger); nothing is faked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypedDict
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from tollway.core.config import TollwaySettings
from tollway.core.cost.attribution import attribute
from tollway.core.errors import BudgetExceededError, TollwayError, ToolLoopError
from tollway.core.model import Model
from tollway.demo.show import Show

BERLIN = ZoneInfo("Europe/Berlin")
OFFICE_HOURS = datetime(2026, 11, 27, 10, 15, tzinfo=BERLIN)  # a Friday morning
SATURDAY_NIGHT = datetime(2026, 11, 28, 23, 30, tzinfo=BERLIN)
SHORT = 48
"""max_tokens of bob's repeated questions (the budget is worth about 2.5 of them)."""


_MCP_ROUNDS = 4
"""Model rounds the MCP step allows (a round asks for the tool or answers)."""


class GraphState(TypedDict):
    question: str
    plan: str
    answer: str


class Ticket(BaseModel):
    """A support ticket, classified."""

    category: str
    urgent: bool


@dataclass
class DemoClock:
    """The clock budgets and allowed hours read during the demo (epoch seconds)."""

    now: datetime = OFFICE_HOURS
    started: float = field(default_factory=time.monotonic)

    def __call__(self) -> float:
        # Real time passes on top of the demo time, so periods and TTLs behave.
        return self.now.timestamp() + (time.monotonic() - self.started)

    def jump(self, to: datetime) -> None:
        self.now = to
        self.started = time.monotonic()


class Story:
    def __init__(self, settings: TollwaySettings, show: Show, workdir: Path, clock: DemoClock) -> None:
        self.settings = settings
        self.show = show
        self.workdir = workdir
        self.clock = clock
        self.failures: list[str] = []

    def model(self, alias: str) -> Model:
        return Model(alias, config=self.settings)

    def step(self, title: str, body: Callable[[], None]) -> None:
        self.show.step(title)
        started = time.perf_counter()
        try:
            body()
        except BudgetExceededError:
            raise
        except Exception as exc:  # a step that fails is reported; the story goes on
            self.failures.append(f"{title}: {type(exc).__name__}: {exc}")
            self.show.error(f"{type(exc).__name__}: {exc}")
        self.show.done(time.perf_counter() - started)

    # ------------------------------------------------------------------ the steps

    def crew(self) -> None:
        from crewai import Agent, Crew, Task

        from tollway.adapters.crewai import TollwayLLM

        researcher = Agent(
            role="Researcher", goal="Find the key facts about a topic",
            backstory="A concise analyst who answers in short bullet points.",
            llm=TollwayLLM(self.model("fast")), max_iter=2, verbose=False,
        )
        writer = Agent(
            role="Writer", goal="Turn facts into one clear paragraph",
            backstory="A writer of short, exact copy.",
            llm=TollwayLLM(self.model("smart")), max_iter=2, verbose=False,
        )
        research = Task(
            description="List three facts about why toll roads charge per trip.",
            expected_output="Three short bullet points.", agent=researcher,
        )
        write = Task(
            description="Write two sentences for a newsletter from the researcher's facts.",
            expected_output="Two sentences.", agent=writer,
        )
        with attribute(org="acme", project="research", user="alice"):
            output = Crew(agents=[researcher, writer], tasks=[research, write],
                          verbose=False).kickoff()
        self.show.quote("crew output", str(output))

    def graph(self) -> None:
        from langgraph.graph import END, START, StateGraph

        from tollway.adapters.langgraph import TollwayChatModel

        planner = TollwayChatModel(client=self.model("fast"), max_tokens=120)
        writer = TollwayChatModel(client=self.model("smart"), max_tokens=120)

        def plan(state: GraphState) -> dict[str, str]:
            msg = planner.invoke(f"List two steps to answer: {state['question']}")
            return {"plan": msg.text}

        def write(state: GraphState) -> dict[str, str]:
            msg = writer.invoke(
                f"Answer the customer in two sentences.\nQuestion: {state['question']}\n"
                f"Plan: {state['plan']}"
            )
            return {"answer": msg.text}

        graph = StateGraph(GraphState)
        graph.add_node("planner", plan)
        graph.add_node("writer", write)
        graph.add_edge(START, "planner")
        graph.add_edge("planner", "writer")
        graph.add_edge("writer", END)
        with attribute(org="acme", project="support", user="bob"):
            state = graph.compile().invoke(
                {"question": "My toll pass was charged twice. What now?", "plan": "", "answer": ""}
            )
        self.show.quote("graph answer", state["answer"])

    def structured(self) -> None:
        from pydantic_ai import Agent

        from tollway.adapters.pydantic_ai import TollwayModel

        agent = Agent(
            TollwayModel(client=self.model("fast")), output_type=Ticket, name="triage",
            instructions="Classify the support ticket. category is one word.",
        )
        with attribute(org="acme", project="research", user="alice"):
            result = agent.run_sync("The toll gate at exit 12 is stuck closed and cars queue.")
        self.show.line(f"Pydantic AI agent 'triage' -> {result.output!r}")

    def mcp_time(self) -> None:
        from tollway.mcp import MCPClient, arun_tools, servers_from_config

        async def run() -> Any:
            async with MCPClient(servers_from_config(self.settings), config=self.settings) as mcp:
                with attribute(org="acme", project="research", user="alice", agent="clock"):
                    return await arun_tools(self.model("fast"),
                        "What time is it in Tokyo right now? Use the tool.",
                        mcp=mcp, max_rounds=_MCP_ROUNDS, tool_choice="required",
                        max_tokens=120,
                    )

        try:
            result = asyncio.run(run())
        except ToolLoopError as exc:
            # A small model may ask for the tool again each round (the time it reads
            # changes every run): the loop's max_rounds is what stops it, by design.
            calls = sum(len(m.tool_calls) for m in exc.transcript if m.role == "assistant")
            self.show.line(f"the model asked for the tool in each of {_MCP_ROUNDS} rounds "
                           f"({calls} tool calls): max_rounds={_MCP_ROUNDS} stopped the loop, "
                           "and every round and tool call is a ledger row")
            return
        for run_ in result.tool_runs:
            self.show.line(f"round {run_.round}: model called {run_.call.name}"
                           f"({run_.call.raw_arguments})")
            self.show.quote("time server answered", run_.result.text)
        self.show.quote("answer", result.text)
        self.show.line(f"{result.rounds} model rounds + {len(result.tool_runs)} tool call(s), "
                       f"one trace id {result.trace_id[:12]}…, cost ${result.cost or 0:.6f}")

    def embeddings(self) -> None:
        docs = [
            "Toll roads charge per trip so that drivers pay for the road they use.",
            "The ferry timetable changes in winter.",
            "A bakery sells fresh bread every morning.",
        ]
        embed = self.model("embed")
        with attribute(org="acme", project="research", user="alice", agent="retriever"):
            found = embed.embed(docs, input_type="document")
            query = embed.embed("Why do toll roads charge for each trip?", input_type="query")
        scores = [sum(a * b for a, b in zip(query.vectors[0], d, strict=True))
                  for d in found.vectors]
        best = max(range(len(docs)), key=scores.__getitem__)
        cost = (found.cost or 0) + (query.cost or 0)
        self.show.line(
            f"embedded {len(docs)} documents and a query on '{found.deployment}': "
            f"{found.dimensions} dimensions, {found.usage.input_tokens + query.usage.input_tokens}"
            f" tokens, ${cost:.6f}"
        )
        self.show.quote("nearest document", docs[best])
        if found.provider == "local":
            self.show.line("(the local chat model's embedding mode: a demo-quality embedder)")

    def images(self) -> None:
        if "draw" not in self.settings.models:
            self.show.line("images need a provider: set OPENAI_API_KEY or GEMINI_API_KEY and run "
                           "the demo again (tollway never fakes an image)")
            return
        with attribute(org="acme", project="research", user="alice", agent="illustrator"):
            result = self.model("draw").generate_image(
                "A flat, minimalist icon of a motorway toll booth", n=1)
        path = result.image.save(self.workdir / "toll-booth.png")
        self.show.line(f"image from '{result.deployment}' saved to {path}: "
                       f"${result.cost or 0:.6f} ({result.usage.output_tokens} output tokens)")

    def budget(self) -> None:
        smart = self.model("smart")
        self.show.line("bob keeps asking the smart model (each call reserves its upper bound)")
        for number in range(1, 9):
            try:
                with attribute(org="acme", project="support", user="bob"):
                    response = smart.complete(
                        f"Give one tip (#{number}) for saving money on tolls.", max_tokens=SHORT
                    )
            except BudgetExceededError as exc:
                self.show.stop(f"call {number} stopped before reaching the provider: {exc}")
                return
            self.show.line(f"call {number}: ${response.cost or 0:.6f}  {_one_line(response.text)}")
        raise TollwayError("bob's daily budget never stopped him: the demo budget is wrong")

    def off_hours(self) -> None:
        self.clock.jump(SATURDAY_NIGHT)
        self.show.line(f"demo clock: {SATURDAY_NIGHT:%A %H:%M} Europe/Berlin")
        with attribute(org="acme", project="research", user="alice"):
            response = self.model("smart").complete(
                "Summarise toll roads in one sentence.", max_tokens=60
            )
        served = response.deployment
        self.show.line(
            f"alice asked for 'smart'; outside mon-fri 08:00-19:00 it was served by "
            f"'{served}' (alias fast)"
        )
        if served != "fast-model":
            raise TollwayError(f"expected the off-hours call on fast-model, got {served}")

    # ------------------------------------------------------------------ the whole story

    def run(self) -> None:
        self.step("CrewAI crew: researcher on 'fast', writer on 'smart' (alice, research)", self.crew)
        self.step("LangGraph graph: planner on 'fast', writer on 'smart' (bob, support)", self.graph)
        self.step("Pydantic AI agent with structured output on 'fast' (alice)", self.structured)
        self.step("MCP: a model uses mcp-server-time's tools (alice)", self.mcp_time)
        self.step("Embeddings: find the document that answers a question (alice)", self.embeddings)
        self.step("Images: one image on the provider's image model (alice)", self.images)
        self.step("Budget: bob's daily budget stops his spending", self.budget)
        self.step("Allowed hours: 'smart' is office-hours only for research", self.off_hours)


def _one_line(text: str, limit: int = 70) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def bob_budget(prices: Any, fast: tuple[str, str], smart: tuple[str, str]) -> Decimal:
    """Bob's daily budget in USD: his LangGraph run's two calls at their upper bound, plus
    two short questions to the smart model, so about the third question is denied.
    ``fast`` / ``smart`` are (provider, deployment name) pairs."""
    def bound(target: tuple[str, str], max_tokens: int, prompt_tokens: int) -> Decimal:
        from tollway.core.types import Usage

        provider, name = target
        model = name.split("/", 1)[1] if "/" in name else name
        price = prices.model_price(provider, model, deployment=name)
        if price is None:
            return Decimal("0.01")
        usage = Usage(input_tokens=prompt_tokens, output_tokens=max_tokens)
        return Decimal(price.cost_nanos(usage)) / 1_000_000_000

    graph = bound(fast, 120, 80) + bound(smart, 120, 250)
    return (graph + Decimal("2") * bound(smart, SHORT, 40)).quantize(Decimal("0.000001"))
