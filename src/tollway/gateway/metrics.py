"""Prometheus metrics for ``GET /metrics``, in the text exposition format.

Counted per process (each worker serves its own ``/metrics``; scrape every worker, or
sum the ledger for totals across machines):

- ``tollway_gateway_requests_total{route, status}``
- ``tollway_gateway_request_duration_seconds{route}`` (histogram; streams until their end)
- ``tollway_gateway_tokens_total{model, key, kind}`` (kind: input | output)
- ``tollway_gateway_cost_usd_total{model, key}``

A few dict updates per request, no dependency: prometheus_client's locks and label
objects would cost more than the gateway's own work.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from typing import TYPE_CHECKING

from tollway.core.types import NANOS_PER_USD

if TYPE_CHECKING:
    from tollway.core.media_types import EmbeddingResponse, ImageResponse
    from tollway.core.types import Response

__all__ = ["Metrics"]

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _labels(**labels: str) -> str:
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return ",".join(f'{k}="{escape(v)}"' for k, v in labels.items())


class Metrics:
    def __init__(self) -> None:
        self.requests: defaultdict[tuple[str, int], int] = defaultdict(int)
        self.durations: dict[str, list[int]] = {}
        self.duration_sums: defaultdict[str, float] = defaultdict(float)
        self.tokens: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self.cost_nanos: defaultdict[tuple[str, str], int] = defaultdict(int)

    def request(self, route: str, status: int, seconds: float) -> None:
        self.requests[(route, status)] += 1
        counts = self.durations.get(route)
        if counts is None:
            counts = self.durations[route] = [0] * (len(BUCKETS) + 1)
        counts[bisect_left(BUCKETS, seconds)] += 1
        self.duration_sums[route] += seconds

    def call(self, model: str, key: str | None,
             response: Response | EmbeddingResponse | ImageResponse) -> None:
        key_label = key or "none"
        usage = response.usage
        self.tokens[(model, key_label, "input")] += usage.input_tokens
        self.tokens[(model, key_label, "output")] += usage.output_tokens
        if response.cost_nanos is not None:
            self.cost_nanos[(model, key_label)] += response.cost_nanos

    def render(self) -> bytes:
        lines = [
            "# HELP tollway_gateway_requests_total Requests answered, by route and status.",
            "# TYPE tollway_gateway_requests_total counter",
        ]
        for (route, status), count in sorted(self.requests.items()):
            lines.append(f"tollway_gateway_requests_total{{{_labels(route=route, status=str(status))}}} {count}")
        lines += [
            "# HELP tollway_gateway_request_duration_seconds Time to answer (streams: to their end).",
            "# TYPE tollway_gateway_request_duration_seconds histogram",
        ]
        for route, counts in sorted(self.durations.items()):
            running = 0
            for bound, count in zip((*BUCKETS, float("inf")), counts, strict=True):
                running += count
                le = "+Inf" if bound == float("inf") else repr(bound)
                lines.append(
                    f"tollway_gateway_request_duration_seconds_bucket{{{_labels(route=route, le=le)}}} {running}"
                )
            lines.append(f"tollway_gateway_request_duration_seconds_sum{{{_labels(route=route)}}} "
                         f"{self.duration_sums[route]:.6f}")
            lines.append(f"tollway_gateway_request_duration_seconds_count{{{_labels(route=route)}}} {running}")
        lines += [
            "# HELP tollway_gateway_tokens_total Tokens of completed calls, by model and key.",
            "# TYPE tollway_gateway_tokens_total counter",
        ]
        for (model, key, kind), count in sorted(self.tokens.items()):
            lines.append(f"tollway_gateway_tokens_total{{{_labels(model=model, key=key, kind=kind)}}} {count}")
        lines += [
            "# HELP tollway_gateway_cost_usd_total Cost of completed calls in USD, by model and key.",
            "# TYPE tollway_gateway_cost_usd_total counter",
        ]
        for (model, key), nanos in sorted(self.cost_nanos.items()):
            lines.append(f"tollway_gateway_cost_usd_total{{{_labels(model=model, key=key)}}} "
                         f"{nanos / NANOS_PER_USD:.9f}")
        return ("\n".join(lines) + "\n").encode()
