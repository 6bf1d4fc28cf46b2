"""smolagents agents with tools on tollway: exact tokens and cost, per agent.

Two agents share one tool: a ToolCallingAgent (native tool calls) and a CodeAgent (the
tool called from generated Python). Both run on a TollwayModel, so every model call
is priced and written to the ledger under the agent's name; the script checks
smolagents' own token count against the ledger and prints the cost per agent.

    python examples/smolagents_tools.py --fake [--stream]
        Offline, against a loopback fake OpenAI-compatible provider.

    python examples/smolagents_tools.py --model anthropic/claude-sonnet-4-5 [--stream]
        For real (the provider's key in its usual environment variable, e.g.
        ANTHROPIC_API_KEY); ``--model`` also takes an alias from tollway.yaml.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from smolagents import CodeAgent, ToolCallingAgent, tool

from tollway.adapters.smolagents import TollwayModel
from tollway.core.reports import spend

RATES = {"EUR": 1.0, "USD": 1.08, "GBP": 0.85, "JPY": 162.0}
QUESTION = "How much is 250 EUR in JPY?"


@tool
def convert_currency(amount: float, source: str, target: str) -> float:
    """Convert an amount between currencies at today's reference rates.

    Args:
        amount: The amount to convert.
        source: The ISO code of the currency the amount is in, e.g. EUR.
        target: The ISO code of the currency to convert to, e.g. JPY.
    """
    return round(amount / RATES[source.upper()] * RATES[target.upper()], 2)


def fake_answer(turn: Any) -> Any:
    """The fake provider's side: call the tool, then answer with what it returned."""
    from _fake_llm_server import Answer

    observed = re.search(r"Observation:\s*([\d.]+)", turn.last)
    if "convert_currency" in turn.tools:  # the ToolCallingAgent: native tool calls
        if observed:
            return Answer(tool=("final_answer", {"answer": f"250 EUR is {observed[1]} JPY"}))
        return Answer(tool=("convert_currency", {"amount": 250, "source": "EUR",
                                                 "target": "JPY"}))
    return Answer(text="Thought: convert with the tool.\n<code>\n"  # the CodeAgent
                       "yen = convert_currency(250, 'EUR', 'JPY')\n"
                       "final_answer(f'250 EUR is {yen} JPY')\n</code>")


def run(model: TollwayModel, stream: bool, ledger: Any) -> None:
    since = datetime.now(UTC)
    agents = [
        ToolCallingAgent(tools=[convert_currency], model=model, name="treasurer",
                         stream_outputs=stream, verbosity_level=0),
        CodeAgent(tools=[convert_currency], model=model, name="analyst",
                  stream_outputs=stream, verbosity_level=0),
    ]
    for agent in agents:
        result = agent.run(QUESTION, return_full_result=True)
        [row] = spend(ledger, group_by=["agent"], since=since, filters={"agent": agent.name})
        usage = result.token_usage
        same = (usage.input_tokens, usage.output_tokens) == (row.input_tokens, row.output_tokens)
        print(f"{agent.name} ({type(agent).__name__}): {result.output}")
        print(f"  smolagents counted {usage.input_tokens} in / {usage.output_tokens} out; "
              f"ledger {row.input_tokens} in / {row.output_tokens} out "
              f"({'equal' if same else 'DIFFERENT'}); {row.calls} call(s), ${row.cost:.6f}")
        if not same:
            raise SystemExit("token counts differ between smolagents and the ledger")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fake", action="store_true", help="run offline on a loopback fake")
    parser.add_argument("--stream", action="store_true", help="stream the model's output")
    parser.add_argument("--model", default="openai/gpt-4o-mini",
                        help="provider/model or an alias from tollway.yaml")
    args = parser.parse_args(argv)
    if not args.fake:
        model = TollwayModel(args.model)
        run(model, args.stream, model.client.ledger)
        return 0

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _fake_llm_server import FakeLLMServer

    with tempfile.TemporaryDirectory() as tmp, FakeLLMServer(fake_answer) as fake:
        ledger = str(Path(tmp) / "ledger.db")
        model = TollwayModel(args.model, api_base=fake.url, api_key="fake-key", ledger=ledger)
        run(model, args.stream, ledger)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
