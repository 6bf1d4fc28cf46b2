"""Cold start of one client in a brand-new interpreter: import, construct, first call.

    python benchmarks/_import_probe.py <client> <server url>     (run.py starts it)

Prints one JSON line: milliseconds and resident memory after each phase. The probe
itself pre-imports only what every client imports anyway (os, socket, json, time) plus
the network guard; ``python`` as the client measures that baseline.
"""

from __future__ import annotations

import json
import sys
import time

from _common import (
    API_KEY,
    CLIENT_CPU,
    LITELLM_MODEL,
    MODEL,
    PROMPT,
    install_network_guard,
    pin,
    rss_kb,
)


def main() -> None:
    client, url = sys.argv[1], sys.argv[2]
    pin(CLIENT_CPU)
    install_network_guard()
    clock = time.perf_counter
    base_kb = rss_kb()
    out: dict[str, object] = {"client": client, "base_rss_mb": base_kb / 1024}
    t0 = clock()

    def mark(phase: str) -> None:
        """Cumulative time since the probe started importing, and memory added."""
        out[f"{phase}_ms"] = (clock() - t0) * 1000
        out[f"{phase}_rss_mb"] = (rss_kb() - base_kb) / 1024

    if client == "python":
        first_call = None
    elif client == "httpx":
        import httpx

        mark("import")
        http = httpx.Client()
        mark("construct")

        def first_call() -> object:
            return json.loads(http.post(f"{url}/chat/completions", json={"model": MODEL, "messages": PROMPT},
                                        headers={"authorization": f"Bearer {API_KEY}"}).content)
    elif client == "aiohttp":
        import aiohttp

        mark("import")
        mark("construct")

        def first_call() -> object:
            import asyncio

            async def go() -> object:
                async with aiohttp.ClientSession() as session, session.post(
                    f"{url}/chat/completions", json={"model": MODEL, "messages": PROMPT}
                ) as resp:
                    return json.loads(await resp.read())

            return asyncio.run(go())
    elif client == "openai":
        import openai

        mark("import")
        oai = openai.OpenAI(base_url=url, api_key=API_KEY)
        mark("construct")

        def first_call() -> object:
            return oai.chat.completions.create(model=MODEL, messages=PROMPT)  # type: ignore[arg-type]
    elif client == "litellm":
        import litellm

        mark("import")
        mark("construct")

        def first_call() -> object:
            return litellm.completion(model=LITELLM_MODEL, messages=PROMPT, api_base=url, api_key=API_KEY)
    elif client == "tollway":
        import tollway

        mark("import")
        from tollway import Model

        mark("import_model")
        model = Model(f"openai/{MODEL}", api_base=url, api_key=API_KEY, ledger=False)
        mark("construct")
        assert tollway.__version__

        def first_call() -> object:
            return model.complete(PROMPT)
    else:
        raise SystemExit(f"unknown client {client!r}")

    if first_call is not None:
        first_call()
        mark("first_call")
    from _common import blocked

    out["network_blocked"] = list(blocked)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
