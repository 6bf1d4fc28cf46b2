"""The llama.cpp wrapper: load a GGUF model once per process, generate text from it.

A ``llama_cpp.Llama`` object is not thread-safe (one KV cache, one sampler), so each
loaded model has a lock and a generation holds it from the first prompt token to the last
generated one; concurrent calls to the same model queue on it. Rendering the chat
template and tokenizing read only immutable model data and run outside the lock, so a
request can be checked (and rejected) without waiting for another call to finish.

Settings come from the environment when a model is first loaded:
``TOLLWAY_LOCAL_THREADS`` (default: the CPUs this process may run on) and
``TOLLWAY_LOCAL_CTX`` (context window in tokens, default 4096).

llama.cpp keeps the previous call's tokens in its KV cache and reuses the longest common
prefix, so a tool loop or a long system prompt is only evaluated once.
"""

from __future__ import annotations

import codecs
import os
import threading
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tollway.core.errors import ConfigError
from tollway.local.weights import INSTALL_HINT

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = [
    "DEFAULT_CTX",
    "Engine",
    "EngineSettings",
    "Generation",
    "LocalExtraMissingError",
    "Sampling",
    "engine_for",
]

DEFAULT_CTX = 4096
_BUILD_HINT = (
    "llama-cpp-python builds from source (5-12 min on 2 cores); build it portable, or "
    "the native build may pick CPU instructions that crash elsewhere: "
    "CMAKE_ARGS='-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON' "
    "(tollway's pyproject sets these for uv)"
)


class LocalExtraMissingError(ConfigError):
    """llama-cpp-python (the ``local`` extra) is not installed or does not load."""


@dataclass(frozen=True, slots=True)
class EngineSettings:
    threads: int
    ctx: int

    @classmethod
    def from_env(cls) -> EngineSettings:
        return cls(
            threads=_env_int("TOLLWAY_LOCAL_THREADS", _cpu_count()),
            ctx=_env_int("TOLLWAY_LOCAL_CTX", DEFAULT_CTX),
        )


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigError(f"environment variable {name} must be a positive integer, got {raw!r}")
    return value


@dataclass(slots=True)
class Sampling:
    """Sampler settings; the defaults are llama.cpp's. ``temperature`` 0 is greedy;
    ``seed`` None draws a random one per call."""

    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    seed: int | None = None


@dataclass(slots=True)
class Generation:
    """What a finished (or stopped) generation produced, filled while it runs."""

    completion_tokens: int = 0
    hit_limit: bool = False
    """True when it stopped because ``max_tokens`` was reached (finish ``length``)."""


class Engine:
    """One loaded model. Build through :func:`engine_for` (cached per path)."""

    def __init__(self, path: Path, settings: EngineSettings) -> None:
        llama_cpp = import_llama_cpp()
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.path = path
        self.settings = settings
        self.lock = threading.Lock()
        try:
            self.llama: Llama = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=settings.ctx,
                n_threads=settings.threads,
                n_threads_batch=settings.threads,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ConfigError(
                f"llama.cpp could not load the model {path}: {exc}; is it a GGUF file of an "
                "architecture this llama-cpp-python version supports?"
            ) from None
        self._lib = llama_cpp
        self._vocab = llama_cpp.llama_model_get_vocab(self.llama.model)
        template = self.llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise ConfigError(
                f"the model {path} has no chat template in its GGUF metadata "
                "(tokenizer.chat_template); use an instruct/chat model"
            )
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=self._token_text(self.llama.token_eos()),
            bos_token=self._token_text(self.llama.token_bos()),
        )

    @property
    def n_ctx(self) -> int:
        return self.settings.ctx

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self.llama.detokenize([token], special=True).decode("utf-8", "replace")

    # ------------------------------------------------------------------ prompt

    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
        """The prompt text: the model's own chat template (from its GGUF metadata) over
        ``messages``, with ``tools`` when the template supports them. A template that
        rejects the conversation raises ValueError with its message."""
        formatter: Any = self._formatter  # llama-cpp types messages as TypedDicts
        result = formatter(messages=messages, tools=tools or None)
        return result.prompt

    def tokenize(self, prompt: str) -> list[int]:
        return self.llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)

    def grammar(self, gbnf: str) -> Any:
        """A LlamaGrammar for ``gbnf``, checked by llama.cpp's own parser first (an
        invalid grammar would otherwise fail inside the sampler). Raises ValueError."""
        from llama_cpp.llama_grammar import LlamaGrammar

        lib = self._lib
        sampler = lib.llama_sampler_init_grammar(self._vocab, gbnf.encode("utf-8"), b"root")
        if not sampler:
            raise ValueError("llama.cpp rejected the grammar built from the JSON schema")
        lib.llama_sampler_free(sampler)
        return LlamaGrammar.from_string(gbnf, verbose=False)

    # ------------------------------------------------------------------ generate

    def generate(
        self,
        tokens: Sequence[int],
        *,
        max_tokens: int,
        sampling: Sampling,
        grammar: Any = None,
        cancel: threading.Event | None = None,
        state: Generation | None = None,
    ) -> Generator[str, None, None]:
        """Text pieces as tokens are sampled (UTF-8 split across tokens is joined before
        it is yielded). Holds the model's lock until the generator is exhausted or
        closed; closing it (or setting ``cancel``) stops generation at the next token.
        Token counts land in ``state``."""
        lib = self._lib
        llama = self.llama
        vocab = self._vocab
        gen = state if state is not None else Generation()
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        with self.lock:
            llama.set_seed(lib.LLAMA_DEFAULT_SEED if sampling.seed is None else sampling.seed & 0xFFFFFFFF)
            tokens_iter = llama.generate(
                list(tokens),
                top_k=sampling.top_k,
                top_p=sampling.top_p,
                min_p=sampling.min_p,
                temp=sampling.temperature,
                frequency_penalty=sampling.frequency_penalty,
                presence_penalty=sampling.presence_penalty,
                grammar=grammar,
            )
            try:
                for token in tokens_iter:
                    if cancel is not None and cancel.is_set():
                        return
                    if lib.llama_vocab_is_eog(vocab, token):
                        break
                    gen.completion_tokens += 1
                    text = decoder.decode(llama.detokenize([token]))
                    if text:
                        yield text
                    if gen.completion_tokens >= max_tokens:
                        gen.hit_limit = True
                        break
                tail = decoder.decode(b"", final=True)
                if tail:
                    yield tail
            finally:
                tokens_iter.close()


_ENGINES: dict[Path, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def engine_for(path: Path) -> Engine:
    """The loaded model for ``path``, loading it on first use (once per process, even
    when several threads ask at the same time)."""
    key = path.resolve()
    engine = _ENGINES.get(key)
    if engine is not None:
        return engine
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = Engine(key, EngineSettings.from_env())
            _ENGINES[key] = engine
    return engine


def import_llama_cpp() -> Any:
    """The ``llama_cpp`` module, or a LocalExtraMissingError with install steps."""
    try:
        import llama_cpp
    except ImportError as exc:
        raise LocalExtraMissingError(
            f"local/<name> models run in-process through llama-cpp-python, which is not "
            f"installed ({exc}); {INSTALL_HINT}. {_BUILD_HINT}"
        ) from None
    except OSError as exc:  # the shared library is there but does not load
        raise LocalExtraMissingError(
            f"llama-cpp-python is installed but its native library does not load ({exc}); "
            f"reinstall it: `uv sync --reinstall-package llama-cpp-python --extra local`. "
            f"{_BUILD_HINT}"
        ) from None
    return llama_cpp
