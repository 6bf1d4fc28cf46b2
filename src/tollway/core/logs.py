"""Log records that cannot carry a secret.

Every logger tollway writes to is made with :func:`logger`, which attaches
:data:`MASK`: before any handler sees a record, its message (arguments merged in), its
traceback and its stack are passed through :func:`~tollway.core.errors.mask_secrets`,
so a key that reached an exception, a provider's answer or a header value never
reaches a log file, at any level. The HTTP libraries tollway drives (httpx, httpcore,
aiohttp) log at DEBUG on their own loggers (httpcore logs response headers, which a
provider may echo a key in); :func:`mask_library_logs` attaches the same filter to
those when the transport's backend modules are imported.

A logging filter only sees records created on the logger it is attached to (a record
propagating from a child logger skips the parent's filters), so the filter is attached
to every logger by name. Filters run only for records whose level is enabled: with
DEBUG off, masking costs nothing. Records of other libraries are not touched; attach
``MASK`` to your own handlers to mask those too.
"""

from __future__ import annotations

import logging
import traceback

from tollway.core.errors import mask_secrets

__all__ = ["LIBRARY_LOGGERS", "MASK", "MaskSecrets", "logger", "mask_library_logs"]

LIBRARY_LOGGERS = ("httpx", "httpcore", "aiohttp")
"""The HTTP libraries whose loggers tollway masks (with every child logger they made)."""


class MaskSecrets(logging.Filter):
    """Rewrites a record so that no secret tollway knows (or that looks like a key)
    remains in its message, traceback or stack; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # bad arguments: the handler reports it; nothing to mask
            return True
        masked = mask_secrets(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = mask_secrets(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_secrets(record.stack_info)
        return True


MASK = MaskSecrets()


def logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` with :data:`MASK` attached (once)."""
    log = logging.getLogger(name)
    log.addFilter(MASK)  # a no-op when already attached
    return log


def mask_library_logs(*libraries: str) -> None:
    """Attach :data:`MASK` to the loggers of ``libraries`` (names from
    :data:`LIBRARY_LOGGERS`) and every child logger they have made; their modules
    create them on import, so the backend modules call this right after importing them."""
    for name in list(logging.root.manager.loggerDict):
        if any(name == lib or name.startswith(lib + ".") for lib in libraries):
            logger(name)
    for lib in libraries:
        logger(lib)
