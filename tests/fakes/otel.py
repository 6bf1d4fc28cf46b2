"""An in-process OpenTelemetry SDK for telemetry tests: spans in an InMemorySpanExporter,
metrics in an InMemoryMetricReader, tollway's telemetry switched on against them and
switched back off (to what it was) afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass
class Otel:
    exporter: Any
    reader: Any
    telemetry: Any
    tracer_provider: Any

    def spans(self, prefix: str = "") -> list[Any]:
        """Finished spans (start order) whose name starts with ``prefix``."""
        found = [s for s in self.exporter.get_finished_spans() if s.name.startswith(prefix)]
        return sorted(found, key=lambda s: s.start_time)

    def span(self, prefix: str) -> Any:
        (found,) = self.spans(prefix)
        return found

    def points(self, name: str) -> list[Any]:
        """Every data point of metric ``name`` collected so far."""
        data = self.reader.get_metrics_data()
        out: list[Any] = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        out.extend(metric.data.data_points)
        return out


@contextmanager
def otel_session(monkeypatch: pytest.MonkeyPatch, *, capture_content: bool = False) -> Iterator[Otel]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from tollway.core.telemetry import enable, switch

    # The suite's environment turns the SDK off for CrewAI (OTEL_SDK_DISABLED=true);
    # these providers must record.
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    before = (switch.current, switch.resolved)
    telemetry = enable(capture_content=capture_content, tracer_provider=tracer_provider,
                       meter_provider=meter_provider)
    try:
        yield Otel(exporter, reader, telemetry, tracer_provider)
    finally:
        switch.current, switch.resolved = before
        tracer_provider.shutdown()
        meter_provider.shutdown()
