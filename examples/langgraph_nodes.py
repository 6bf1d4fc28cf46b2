"""A LangGraph graph whose nodes run on different models, priced per node.

The planner node asks the ``planner`` alias for an outline, the writer node asks the
``writer`` alias for the text. The code names ALIASES only: tollway.yaml decides which
provider and model each one is, and every call lands in the ledger under its node name
(LangGraph tells the model which node called it). The script ends by printing the cost
per node of this run, read back from the ledger.

    python examples/langgraph_nodes.py --fake
        Offline: two loopback fake providers stand in for OpenAI (planner) and Anthropic
        (writer); a tollway.yaml and a ledger are written to a temporary directory.

    TOLLWAY_CONFIG=tollway.yaml python examples/langgraph_nodes.py --topic "toll roads"
        For real, with a tollway.yaml such as::

            models:
              planner: openai/gpt-4o-mini
              writer: anthropic/claude-sonnet-4-5
            ledger: ./ledger.db
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph

from tollway.adapters.langgraph import TollwayChatModel
from tollway.core.cost.ledger import Ledger
from tollway.core.reports import spend

FAKE_CONFIG = """\
models:
  planner:
    - model: openai/gpt-4o-mini
      api_base: {planner_url}
      api_key: env:FAKE_PROVIDER_KEY
  writer:
    - model: anthropic/claude-sonnet-4-5
      api_base: {writer_url}
      api_key: env:FAKE_PROVIDER_KEY
ledger: sqlite:///{ledger}
"""


class Essay(TypedDict):
    topic: str
    outline: str
    text: str


def build_graph(planner: TollwayChatModel, writer: TollwayChatModel) -> Any:
    """planner -> writer: each node calls its own model (its own alias)."""

    def plan(state: Essay) -> dict[str, str]:
        answer = planner.invoke(f"Outline a three-paragraph essay on {state['topic']}.")
        return {"outline": answer.text}

    def write(state: Essay) -> dict[str, str]:
        answer = writer.invoke(f"Write the essay from this outline:\n{state['outline']}")
        return {"text": answer.text}

    graph = StateGraph(Essay)
    graph.add_node("planner", plan)
    graph.add_node("writer", write)
    graph.add_edge(START, "planner")
    graph.add_edge("planner", "writer")
    graph.add_edge("writer", END)
    return graph.compile()


def start_fakes(stack: ExitStack, workdir: Path) -> Path:
    """Two loopback providers with scripted answers, and a tollway.yaml naming them."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo, for tests.fakes
    from tests.fakes import replies_anthropic, replies_openai
    from tests.fakes.server import FakeProvider

    planner = stack.enter_context(FakeProvider())
    writer = stack.enter_context(FakeProvider())
    planner.add(replies_openai.text_reply(
        "1. Why tolls exist\n2. How they are priced\n3. What changes with metering"))
    writer.add(replies_anthropic.text_reply(
        "Tolls exist because roads cost money to build and keep. They are priced per "
        "trip, often by distance. Metering every trip makes the cost of each one visible."))
    os.environ.setdefault("FAKE_PROVIDER_KEY", "sk-fake-example-key")
    config = workdir / "tollway.yaml"
    config.write_text(FAKE_CONFIG.format(planner_url=planner.url, writer_url=writer.url,
                                         ledger=workdir / "ledger.db"))
    return config


def print_costs(ledger: Ledger, since: datetime) -> None:
    rows = spend(ledger, group_by=["node", "alias", "model"], since=since)
    print(f"\n{'node':<10}{'alias':<10}{'model':<28}{'calls':>6}{'tokens in/out':>16}{'cost':>14}")
    for row in sorted(rows, key=lambda r: str(r.group["node"])):
        g = row.group
        tokens = f"{row.input_tokens}/{row.output_tokens}"
        cost = f"${row.cost:.6f}" + (" +unpriced" if row.unpriced_calls else "")
        print(f"{g['node']!s:<10}{g['alias']!s:<10}{g['model']!s:<28}{row.calls:>6}"
              f"{tokens:>16}{cost:>14}")
    total = sum(r.cost for r in rows)
    print(f"{'total':<48}{sum(r.calls for r in rows):>6}{'':>16}{f'${total:.6f}':>14}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fake", action="store_true", help="run offline on loopback fakes")
    parser.add_argument("--config", help="tollway.yaml (default: $TOLLWAY_CONFIG / ./tollway.yaml)")
    parser.add_argument("--topic", default="toll roads")
    args = parser.parse_args(argv)

    with ExitStack() as stack:
        config: Any = args.config
        if args.fake:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            config = start_fakes(stack, workdir)
        options = {"config": config} if config else {}
        planner = TollwayChatModel(model="planner", project="essays",
                                   client_options=options)
        writer = TollwayChatModel(model="writer", project="essays", client_options=options)

        started = datetime.now(UTC)
        run_id = str(uuid.uuid4())
        essay = build_graph(planner, writer).invoke(
            {"topic": args.topic, "outline": "", "text": ""}, config={"run_id": run_id})
        print(f"Outline:\n{essay['outline']}\n\nEssay:\n{essay['text']}")
        ledger = planner.tollway_model.ledger
        if ledger is None:
            print("\n(the ledger is off in this config: no costs to show)")
        else:
            print(f"\ngraph run {run_id}: cost per node (from the ledger)")
            print_costs(ledger, since=started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
