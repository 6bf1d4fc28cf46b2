"""OpenTelemetry GenAI spans and metrics: the switch.

Telemetry is OFF by default and then costs one attribute read per call: the call
paths test ``switch.current is not None`` and nothing else, and ``opentelemetry`` is
never imported. Turned on, ``switch.current`` holds the
:class:`~tollway.core.telemetry.otel.Telemetry` that makes the spans and records the
metrics (``otel.py``, the only module here that imports ``opentelemetry``).

What turns it on, process-wide (a TracerProvider is process-wide too):

- :func:`enable` (``tollway.enable_telemetry()``) from code; :func:`disable` turns it off;
- ``TOLLWAY_OTEL=1`` in the environment (``0`` keeps it off whatever a config says);
- ``telemetry: {enabled: true}`` in a tollway.yaml a Model or the gateway is built from.

Prompts and outputs are recorded only when opted in: ``capture_content=True``,
``telemetry.capture_content: true`` or the standard
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from tollway.core.errors import ConfigError

if TYPE_CHECKING:
    from tollway.core.telemetry.otel import Telemetry

__all__ = [
    "ENV_CAPTURE", "ENV_SWITCH", "apply_config", "disable", "disable_telemetry", "enable",
    "enable_telemetry", "resolve", "switch",
]

ENV_SWITCH = "TOLLWAY_OTEL"
ENV_CAPTURE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


class Switch:
    """``current``: the live Telemetry, or None (off). Read on every call; written
    only by :func:`enable` / :func:`disable` / :func:`resolve`."""

    __slots__ = ("current", "resolved")

    def __init__(self) -> None:
        self.current: Telemetry | None = None
        self.resolved = False


switch = Switch()
_lock = threading.Lock()


def _flag(name: str) -> bool | None:
    """An environment switch: True, False, or None when unset; anything else is an
    error that names the variable (a typo must not silently leave tracing off)."""
    raw = os.environ.get(name)
    if raw is None:
        return None
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a switch: use 1/true/on or 0/false/off", key=name)


def enable(
    *,
    capture_content: bool | None = None,
    propagate: bool = True,
    tracer_provider: Any = None,
    meter_provider: Any = None,
) -> Telemetry:
    """Turn telemetry on for this process and return it.

    ``capture_content``: record prompts, outputs and tool arguments/results (default:
    ``$OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``, else off). ``propagate``:
    send each call span's context to the provider (``traceparent`` on the request).
    ``tracer_provider`` / ``meter_provider``: where spans and metrics go (default: the
    global providers, looked up at each use, so a provider set later still receives them).
    Raises ConfigError when ``opentelemetry-api`` is not installed.
    """
    try:
        from tollway.core.telemetry.otel import Telemetry
    except ImportError as exc:
        raise ConfigError(
            "telemetry is enabled but the OpenTelemetry API is not installed "
            f"({exc.name or exc}): pip install 'tollway[otel]'", key="telemetry",
        ) from None
    if capture_content is None:
        capture_content = bool(_flag(ENV_CAPTURE))
    telemetry = Telemetry(capture_content=capture_content, propagate_context=propagate,
                          tracer_provider=tracer_provider, meter_provider=meter_provider)
    with _lock:
        switch.current = telemetry
        switch.resolved = True
    return telemetry


def disable() -> None:
    """Turn telemetry off: calls from now on create no spans and record no metrics."""
    with _lock:
        switch.current = None
        switch.resolved = True


def resolve() -> None:
    """Apply ``$TOLLWAY_OTEL`` once per process (Models call this when they are built;
    after the first time it is one attribute read)."""
    if switch.resolved:
        return
    with _lock:
        if switch.resolved:
            return
        on = _flag(ENV_SWITCH)
        switch.resolved = True
    if on:
        enable()


def apply_config(enabled: bool, capture_content: bool = False, propagate: bool = True) -> None:
    """A tollway.yaml's ``telemetry:`` section: ``enabled: true`` turns telemetry on
    unless ``$TOLLWAY_OTEL`` says 0; ``enabled: false`` changes nothing (off is the
    default, and another config or the code may have turned it on on purpose). A
    telemetry already on keeps its providers and gains the section's settings."""
    resolve()
    if not enabled or _flag(ENV_SWITCH) is False:
        return
    current = switch.current
    capture = capture_content or (current is not None and current.capture_content)
    if (current is not None and current.capture_content == capture
            and current.propagate_context == propagate):
        return
    enable(capture_content=capture or None, propagate=propagate,
           tracer_provider=None if current is None else current.tracer_provider,
           meter_provider=None if current is None else current.meter_provider)


enable_telemetry = enable
disable_telemetry = disable
