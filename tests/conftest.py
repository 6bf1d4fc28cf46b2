"""Shared fixtures: loopback fake providers, started and stopped by the test that uses them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.server import FakeProvider


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        yield server


def corpus_dir() -> Path:
    """The recorded provider traffic (../shared/corpus/A beside the repo, or
    TOLLWAY_CORPUS_DIR); tests that need it skip when it is absent."""
    env = os.environ.get("TOLLWAY_CORPUS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "A"
