"""Keep agent frameworks off the network and out of the real HOME while tests run.

CrewAI sends telemetry, may start tracing or check PyPI for a newer version, and writes
state under ``$HOME`` (a credentials key, a task-output database, ``~/.config/crewai``),
some of it at import time. So CrewAI is imported with ``HOME`` (and the XDG dirs and
``CREWAI_STORAGE_DIR``) pointing at a temporary directory and every phone-home switch
off; the same environment is set again around each CrewAI test by the
:func:`crewai_env` fixture, and undone afterwards, so nothing leaks into other tests.

:func:`no_network` makes any connection to a host other than loopback an error for
the duration of a test: the tests prove, rather than assume, that the only HTTP is to
the fake provider. :func:`real_home_snapshot` lists what CrewAI could have written in
the real HOME, to compare before and after. :func:`run_offline` runs an example script
in a subprocess with the same environment and a socket guard that reports any attempt
to reach a host other than loopback.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REAL_HOME = Path(os.path.expanduser("~"))
HOME = Path(tempfile.mkdtemp(prefix="tollway-crewai-home-"))
atexit.register(shutil.rmtree, HOME, True)

ENV = {
    "HOME": str(HOME),
    "XDG_DATA_HOME": str(HOME / ".local" / "share"),
    "XDG_CONFIG_HOME": str(HOME / ".config"),
    "XDG_CACHE_HOME": str(HOME / ".cache"),
    "CREWAI_STORAGE_DIR": str(HOME / "crewai-storage"),
    "CREWAI_DISABLE_TELEMETRY": "true",
    "CREWAI_DISABLE_TRACKING": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_VERSION_CHECK": "true",
    "OTEL_SDK_DISABLED": "true",
}

WATCHED = (
    ".local/share/crewai", f".local/share/{Path.cwd().name}", ".config/crewai", ".crewai",
    ".cache/crewai", ".local/state/crewai", ".local/share/CrewAI",
)
"""Where CrewAI writes under a HOME: its credentials key and CLI settings, and the
task-output / memory database that appdirs puts under the current directory's name.
Only these are compared (other programs on the machine may write elsewhere in HOME)."""


@contextmanager
def isolated_env() -> Iterator[Path]:
    saved = {name: os.environ.get(name) for name in ENV}
    os.environ.update(ENV)
    try:
        yield HOME
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def import_crewai() -> ModuleType:
    """``crewai``, imported inside the isolated environment (or a skip)."""
    with isolated_env():
        return pytest.importorskip("crewai")


@pytest.fixture
def crewai_env() -> Iterator[Path]:
    """The isolated environment for the duration of one test; yields the temp HOME."""
    with isolated_env() as home:
        yield home


_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def _is_loopback(address: Any) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0] if isinstance(address, tuple) and address else address
    return str(host) in _LOOPBACK or str(host).startswith("127.")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection or name lookup for a non-loopback host raises, in any thread."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def guard(address: Any) -> None:
        if not _is_loopback(address):
            raise AssertionError(f"test tried to reach the network: {address!r}")

    def connect(self: socket.socket, address: Any) -> None:
        guard(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        guard(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None:
            guard((host.decode() if isinstance(host, bytes) else host,))
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def real_home_snapshot() -> dict[str, float]:
    """path -> mtime of every file (and directory) in CrewAI's places in the REAL home."""
    out: dict[str, float] = {}
    for sub in WATCHED:
        root = REAL_HOME / sub
        if not root.exists():
            continue
        out[str(root)] = root.stat().st_mtime
        for dirpath, _dirnames, filenames in os.walk(root):
            for name in filenames:
                path = os.path.join(dirpath, name)
                try:
                    out[path] = os.stat(path).st_mtime
                except OSError:
                    continue
    return out


NETWORK_ATTEMPT = "NETWORK ATTEMPT:"
_GUARD = f"""
import runpy, socket, sys
_connect, _getaddrinfo = socket.socket.connect, socket.getaddrinfo
def _local(host):
    host = host.decode() if isinstance(host, bytes) else str(host)
    return host in ("localhost", "::1") or host.startswith("127.")
def _check(what):
    print("{NETWORK_ATTEMPT}", repr(what), file=sys.stderr, flush=True)
    raise OSError("network access from an offline example: " + repr(what))
def connect(self, address):
    if isinstance(address, tuple) and not _local(address[0]):
        _check(address)
    return _connect(self, address)
def getaddrinfo(host, *args, **kwargs):
    if host is not None and not _local(host):
        _check(host)
    return _getaddrinfo(host, *args, **kwargs)
socket.socket.connect, socket.getaddrinfo = connect, getaddrinfo
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_offline(
    script: Path, *args: str, cwd: Path, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``script args`` in a fresh interpreter: isolated HOME, phone-home switches
    off, and any non-loopback connection reported on stderr as NETWORK_ATTEMPT."""
    return subprocess.run(
        [sys.executable, "-c", _GUARD, str(script), *args],
        cwd=cwd, env={**os.environ, **ENV}, capture_output=True, text=True, timeout=timeout,
        check=False,
    )


BASELINE = real_home_snapshot()
"""The real HOME as it was before any CrewAI import in this process (this module is
imported first by every CrewAI test module), so import-time writes are caught too."""
