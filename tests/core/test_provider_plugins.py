"""Providers registered from outside core: core finds them by name, never by import.

A plugin provider registers its table row and its transport; ``Model`` uses that
transport for the provider's deployments and the HTTP transport for the others, in
one alias, on both drivers.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import tollway
from tests.fakes import replies_openai
from tests.fakes.server import FakeProvider
from tollway.core import plugins
from tollway.core.providers import PROVIDERS, known_providers
from tollway.core.transport import default_transport

_PLUGIN = """
import json

from tollway.core.providers import ProviderSpec, register_provider
from tollway.core.transport import RawResponse

BODY = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "from the plugin"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}}


class InProcess:
    \"\"\"Answers OpenAI chat bodies without a socket, as an in-process model would.\"\"\"

    def __init__(self):
        self.bodies = []

    def _answer(self, req):
        self.bodies.append(req.json)
        return RawResponse(200, {"content-type": "application/json"}, json.dumps(BODY).encode())

    def post(self, dep, req):
        return self._answer(req)

    async def apost(self, dep, req):
        return self._answer(req)


TRANSPORT = InProcess()
register_provider(
    ProviderSpec("inproc", "openai_chat", "inproc://", auth="none", key_required=False,
                 in_process=True),
    lambda: TRANSPORT,
)
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A plugin package on sys.path whose import registers the ``inproc`` provider."""
    (tmp_path / "tollway_test_plugin.py").write_text(_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.PROVIDER_MODULES["inproc"] = "tollway_test_plugin"
    yield "tollway_test_plugin"
    plugins.PROVIDER_MODULES.pop("inproc", None)
    PROVIDERS.pop("inproc", None)
    sys.modules.pop("tollway_test_plugin", None)


def test_a_plugin_provider_is_listed_before_it_is_loaded(plugin: str) -> None:
    assert "inproc" in known_providers()
    assert "inproc" not in PROVIDERS and plugin not in sys.modules


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_an_alias_mixing_a_plugin_and_an_http_deployment_uses_each_ones_transport(
    plugin: str, fake: FakeProvider, driver: str
) -> None:
    fake.default = replies_openai.text_reply("from http")
    config = {
        "models": {
            "http": [{"model": "openai_compatible/m", "api_base": fake.url}],
            "inproc": [{"model": "inproc/m"}],
        },
        "ledger": False,
    }

    def call(alias: str) -> str:
        model = tollway.Model(alias, config=config)
        if driver == "sync":
            return model.complete("hi").text
        return asyncio.run(model.acomplete("hi")).text

    assert call("http") == "from http"
    assert call("inproc") == "from the plugin"
    assert call("http") == "from http"  # the HTTP transport is not kept for the plugin
    assert call("inproc") == "from the plugin"
    transport = sys.modules[plugin].TRANSPORT  # loaded by the first inproc target
    assert len(fake.requests) == 2 and len(transport.bodies) == 2
    assert transport.bodies[0]["messages"] == [{"role": "user", "content": "hi"}]


def test_one_model_keeps_each_deployments_transport_after_calls(
    plugin: str, fake: FakeProvider
) -> None:
    fake.default = replies_openai.text_reply("from http")
    config = {
        "models": {"mixed": [
            {"model": "openai_compatible/m", "api_base": fake.url, "name": "http"},
            {"model": "inproc/m", "name": "inproc"},
        ]},
        "ledger": False,
    }
    model = tollway.Model("mixed", config=config)
    http, inproc = model.deployments
    for _ in range(4):  # whichever deployment served, neither transport replaces the other
        model.complete("hi")
        assert model.transport_for(inproc) is sys.modules[plugin].TRANSPORT
        assert model.transport_for(http) is default_transport()
