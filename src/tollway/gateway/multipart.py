"""``multipart/form-data`` request bodies (what the openai SDK sends to
``/v1/images/edits``), read with the standard library's MIME parser: no dependency, and
the body is already whole in memory under the gateway's size limit."""

from __future__ import annotations

from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP

from tollway.gateway.errors import GatewayError

__all__ = ["Form", "UploadedFile", "read_form"]


@dataclass(frozen=True, slots=True)
class UploadedFile:
    filename: str | None
    media_type: str
    data: bytes


@dataclass(slots=True)
class Form:
    """Text fields by name (the last value wins) and files by name, in order
    (``image`` and ``image[]`` are the same name: the SDK sends several as ``image[]``)."""

    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, list[UploadedFile]] = field(default_factory=dict)


def read_form(body: bytes, content_type: str, *,
              what: str = "the image files and the fields") -> Form:
    """The form of ``body``; ``what`` says in the error what the endpoint expects."""
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type:
        raise GatewayError(400, f"this endpoint takes multipart/form-data ({what}), with a "
                                "boundary in the content-type")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise GatewayError(400, "the multipart/form-data body could not be read")
    form = Form()
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name:
            raise GatewayError(400, "a multipart part has no name in its Content-Disposition")
        name = name.removesuffix("[]")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is None and part.get_content_type() in ("text/plain", "text/plain; charset=utf-8"):
            try:
                form.fields[name] = data.decode("utf-8")
            except UnicodeDecodeError:
                raise GatewayError(400, f"the form field {name!r} is not UTF-8 text") from None
            continue
        form.files.setdefault(name, []).append(
            UploadedFile(filename, part.get_content_type(), data))
    return form
