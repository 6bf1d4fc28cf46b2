"""Swap the model behind one CrewAI agent by editing tollway.yaml, not code.

The crew below names ALIASES, never models: the researcher runs on ``research``, the
writer on ``writing``. tollway.yaml decides what each alias is (provider, model,
endpoint, fallbacks), every call lands in the ledger with the agent's role, and the
script ends by printing the cost per agent from the ledger.

    python examples/crew_model_swap.py --fake
        Offline: a loopback fake provider stands in for OpenAI and Anthropic. The crew
        runs once, then the script edits ONE line of the generated tollway.yaml
        (``writing`` moves from openai/gpt-4o to anthropic/claude-sonnet-4-5) and runs
        the very same code again: the ledger shows the writer's calls on the new model.

    TOLLWAY_CONFIG=tollway.yaml python examples/crew_model_swap.py
        For real, with your tollway.yaml, e.g.::

            models:
              research: openai/gpt-4o-mini
              writing: anthropic/claude-sonnet-4-5
            ledger: ./ledger.db

Every LLM in the crew is a TollwayLLM: a place left unset (an agent's llm, a planning or
manager LLM) would fall back to CrewAI's default OpenAI model, outside tollway.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FACTS = {
    "toll roads": "The first modern toll motorway, the Autostrada dei Laghi near Milan, "
    "opened in 1924.",
}

FAKE_CONFIG = """\
models:
  research:
    model: openai/gpt-4o-mini
    api_base: {url}
    api_key: env:FAKE_PROVIDER_KEY
  writing:
    model: openai/gpt-4o
    api_base: {url}
    api_key: env:FAKE_PROVIDER_KEY
ledger: {ledger}
"""
SWAP = ("    model: openai/gpt-4o\n", "    model: anthropic/claude-sonnet-4-5\n")


def build_crew(topic: str) -> Any:
    """The crew: this code never changes when a model does."""
    from crewai import Agent, Crew, Task
    from crewai.tools import tool

    from tollway.adapters.crewai import TollwayLLM

    @tool("lookup_fact")
    def lookup_fact(topic: str) -> str:
        """Look a topic up in the team's fact sheet."""
        return FACTS.get(topic.lower(), "No fact on file for that topic.")

    researcher = Agent(
        role="Researcher", goal="Find one solid, sourced fact", tools=[lookup_fact],
        backstory="You check facts before anyone writes about them.",
        llm=TollwayLLM("research"),
    )
    writer = Agent(
        role="Writer", goal="Turn a fact into one clear sentence",
        backstory="You write short, exact copy.", llm=TollwayLLM("writing"),
    )
    research = Task(
        name="research", agent=researcher, expected_output="One fact.",
        description=f"Look up '{topic}' with the lookup_fact tool and report the fact.",
    )
    write = Task(
        name="write", agent=writer, context=[research], expected_output="One sentence.",
        description="Write a one-sentence summary of the fact for a newsletter.",
    )
    return Crew(agents=[researcher, writer], tasks=[research, write])


def print_costs(ledger: Any, since: datetime) -> None:
    """Cost per agent and model since ``since``, straight from the ledger."""
    from tollway.core.reports import spend

    print(f"  {'agent':<12}{'model':<36}{'calls':>6}{'tokens':>9}{'cost (USD)':>14}")
    for row in spend(ledger, group_by=["agent", "provider", "model"], since=since):
        group = row.group
        model = f"{group['provider']}/{group['model']}"
        cost = f"{row.cost:.6f}" + ("" if not row.unpriced_calls else " + unpriced")
        tokens = row.input_tokens + row.output_tokens
        print(f"  {group['agent'] or '-':<12}{model:<36}{row.calls:>6}{tokens:>9}{cost:>14}")


def run_once(topic: str, ledger: Any) -> None:
    since = datetime.now(UTC)
    output = build_crew(topic).kickoff()
    print(f"\n  crew output: {output.raw}\n")
    print_costs(ledger, since)


def fake_answer(turn: Any) -> Any:
    """The fake provider's side of the conversation."""
    from _fake_llm_server import Answer

    if turn.tool_result is not None:
        return Answer(text=f"Fact: {turn.tool_result}")
    if "lookup_fact" in turn.tools:
        return Answer(tool=("lookup_fact", {"topic": "toll roads"}))
    return Answer(text=f"Toll motorways are a century old: the first opened near Milan in "
                       f"1924. (written by {turn.model})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fake", action="store_true", help="run offline on a loopback fake")
    parser.add_argument("--topic", default="toll roads")
    args = parser.parse_args(argv)
    if not args.fake:
        from tollway.core.config import load_config

        settings = load_config()
        if settings is None:
            parser.error("no tollway.yaml: set TOLLWAY_CONFIG or run with --fake")
        run_once(args.topic, settings.ledger_target)
        return 0

    # Offline: nothing may phone home (CrewAI reads these when it is imported).
    for name in ("CREWAI_DISABLE_TELEMETRY", "CREWAI_DISABLE_VERSION_CHECK", "OTEL_SDK_DISABLED"):
        os.environ.setdefault(name, "true")
    os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")
    os.environ["FAKE_PROVIDER_KEY"] = "fake-key"
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _fake_llm_server import FakeLLMServer

    with tempfile.TemporaryDirectory() as tmp, FakeLLMServer(fake_answer) as fake:
        config = Path(tmp) / "tollway.yaml"
        ledger = str(Path(tmp) / "ledger.db")
        config.write_text(FAKE_CONFIG.format(url=fake.url, ledger=ledger))
        os.environ["TOLLWAY_CONFIG"] = str(config)

        print("run 1: writing = openai/gpt-4o")
        run_once(args.topic, ledger)

        config.write_text(config.read_text().replace(*SWAP))
        print("\nrun 2: tollway.yaml edited, writing = anthropic/claude-sonnet-4-5 "
              "(same code)")
        run_once(args.topic, ledger)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
