"""``local/<name>`` embeddings through llama.cpp's embedding mode on the shipped model
(slow: real inference), on both drivers; the refusals need no model."""

from __future__ import annotations

from pathlib import Path

import pytest

import tollway
from tests.conftest import Driver
from tollway import errors

pytestmark = pytest.mark.slow


def _model(**kw: object) -> tollway.Model:
    pytest.importorskip("llama_cpp")
    from tollway.local.weights import WeightsError, ensure_weights

    try:
        ensure_weights()
    except WeightsError as exc:
        pytest.skip(f"the local model is not installed: {exc}")
    return tollway.Model("local/qwen2.5-coder-0.5b", config=False, **kw)  # type: ignore[arg-type]


def _cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_local_embeddings_are_free_recorded_and_place_related_texts_closer(
    driver: Driver,
) -> None:
    from tollway.core.stores.open import open_ledger

    ledger = open_ledger("memory")
    model = _model(ledger=ledger)
    texts = ["the cat sat on the mat", "stock markets fell today", "a kitten rested on the rug"]
    with tollway.attribute(user="offline"):
        result = driver.embed(model, texts)
    cat, stocks, kitten = result.vectors
    assert result.dimensions == 896
    assert _cos(cat, kitten) > _cos(cat, stocks)  # demo quality, but not noise
    assert result.usage.input_tokens >= 15 and not result.usage_estimated
    assert result.cost_nanos == 0  # in-process: no one bills it
    [row] = ledger.records()
    assert (row.kind, row.provider, row.user, row.cost_nanos) == ("embedding", "local", "offline", 0)


def test_local_embeddings_refuse_what_the_model_cannot_do(driver: Driver) -> None:
    model = _model(ledger=False)
    with pytest.raises(errors.BadRequestError, match="896 dimensions"):
        driver.embed(model, "x", dimensions=256)
    with pytest.raises(errors.BadRequestError, match="floats only"):
        driver.embed(model, "x", encoding_format="base64")


def test_a_missing_local_model_file_is_not_found(tmp_path: Path, driver: Driver) -> None:
    model = tollway.Model("local/mine", api_base=str(tmp_path / "absent.gguf"), ledger=False,
                          config=False)
    with pytest.raises(errors.NotFoundError, match="no model file"):
        driver.embed(model, "x")
