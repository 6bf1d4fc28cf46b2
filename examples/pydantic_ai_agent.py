"""A Pydantic AI agent with a tool and a structured output, on a tollway model.

The agent looks a city's weather up with a tool and answers with a ``Report`` (a
pydantic model). Its model is ``TollwayModel(<alias or provider/model>)``: every request
is routed, priced and recorded in the ledger under the agent's name. The script prints
the report, Pydantic AI's own usage (whose cost IS tollway's price) and the spend the
ledger recorded for the agent.

    python examples/pydantic_ai_agent.py --fake
        Offline: a loopback fake provider stands in for OpenAI; the ledger goes to a
        temporary directory.

    OPENAI_API_KEY=... python examples/pydantic_ai_agent.py --model openai/gpt-4o-mini
    TOLLWAY_CONFIG=tollway.yaml python examples/pydantic_ai_agent.py --model smart
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from pydantic_ai import Agent

from tollway.adapters.pydantic_ai import TollwayModel
from tollway.core.reports import spend

WEATHER = {"oslo": (4, "drizzle"), "rome": (24, "sunny"), "lima": (19, "overcast")}


class Report(BaseModel):
    """What the agent answers with."""

    city: str
    temperature_c: int
    summary: str = Field(description="one sentence for a traveller")


def build_agent(model: TollwayModel) -> Agent[None, Report]:
    agent: Agent[None, Report] = Agent(
        model, output_type=Report, name="travel_weather",
        instructions="Look the weather up with the tool, then answer with a Report.",
    )

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """Today's temperature (Celsius) and sky for a city."""
        temperature, sky = WEATHER.get(city.lower(), (15, "unknown"))
        return f"{temperature}C, {sky}"

    return agent


def start_fake(stack: ExitStack) -> str:
    """A loopback OpenAI-compatible provider that calls the tool, then answers."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, for tests.fakes
    from tests.fakes import replies_openai
    from tests.fakes.server import FakeProvider

    fake = stack.enter_context(FakeProvider())
    fake.add(
        replies_openai.tool_call_reply([("get_weather", {"city": "Oslo"})]),
        replies_openai.tool_call_reply([("final_result", {
            "city": "Oslo", "temperature_c": 4,
            "summary": "Pack a rain jacket: 4C with drizzle."})]),
    )
    return fake.url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fake", action="store_true", help="run offline on a loopback fake")
    parser.add_argument("--model", default="openai/gpt-4o-mini",
                        help="an alias from tollway.yaml or provider/model")
    parser.add_argument("--city", default="Oslo")
    args = parser.parse_args(argv)

    with ExitStack() as stack:
        options: dict[str, Any] = {}
        if args.fake:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            options = {"api_base": start_fake(stack), "api_key": "sk-fake-example-key",
                       "ledger": str(workdir / "ledger.db")}
        model = TollwayModel(args.model, project="travel", **options)
        started = datetime.now(UTC)
        result = build_agent(model).run_sync(f"What's the weather in {args.city}?")

        report = result.output
        print(f"{report.city}: {report.temperature_c}C. {report.summary}")
        usage = result.usage
        cost = "unknown" if usage.cost is None else f"${usage.cost:.6f}"
        print(f"\nPydantic AI usage: {usage.requests} requests, {usage.input_tokens} input / "
              f"{usage.output_tokens} output tokens, cost {cost}")
        ledger = model.client.ledger
        if ledger is not None:
            print("ledger, this run:")
            for row in spend(ledger, group_by=["agent", "model"], since=started):
                print(f"  agent={row.group['agent']} model={row.group['model']}: "
                      f"{row.calls} calls, ${row.cost:.6f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
