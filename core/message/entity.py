"""The template's structure: header sections and the MIME tree, read once, byte-exact.

A parsed :class:`Entity` keeps each header's bytes as they were and each body as a slice
of the file (CRLF line ends throughout), so that what is not personalised or re-encoded
goes out exactly as written. Reading is strict where a lenient reader would send a broken
message: no header section, a malformed header, a multipart without its boundary or with
its closing delimiter missing (a truncated file) are :class:`TemplateError`.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from email import policy
from email.headerregistry import ContentDispositionHeader, ContentTypeHeader

from core.message.errors import TemplateError

_HEADER_NAME = re.compile(rb"[!-9;-~]+")  # RFC 5322 §2.2: printable ASCII but ":"


@dataclass(frozen=True, slots=True)
class Header:
    """One header: its name as written, and its lines (CRLF between, none at the end)."""

    name: str
    raw: bytes

    @property
    def key(self) -> str:
        return self.name.lower()

    @property
    def value(self) -> str:
        """Unfolded (RFC 5322 §2.2.3) and decoded: raw UTF-8 is allowed (RFC 6532)."""
        text = self.raw.partition(b":")[2].replace(b"\r\n", b"")
        try:
            return text.decode("utf-8").lstrip(" \t")
        except UnicodeDecodeError as error:
            raise TemplateError(
                f"the {self.name} header holds bytes that are not UTF-8 ({error.reason}): "
                "save the message as UTF-8"
            ) from None


@dataclass(frozen=True, slots=True)
class Entity:
    """A message or a body part (RFC 2045 §2.4): headers and body, or sub-parts."""

    headers: tuple[Header, ...]
    body: bytes
    #: "the message", "part 2", "part 1.2": where an error is, for the user.
    where: str
    content_type: str = "text/plain"
    params: dict[str, str] = field(default_factory=dict)
    parts: tuple[Entity, ...] = ()
    preamble: bytes = b""
    epilogue: bytes = b""

    @property
    def multipart(self) -> bool:
        return self.content_type.startswith("multipart/")

    @property
    def transfer_encoding(self) -> str:
        """The Content-Transfer-Encoding, lower-case; 7bit when absent (RFC 2045 §6.1)."""
        for header in self.headers:
            if header.key == "content-transfer-encoding":
                return header.value.strip().lower() or "7bit"
        return "7bit"

    @property
    def attachment(self) -> bool:
        """A file: ``Content-Disposition: attachment``, or a file name (``filename`` or
        Content-Type's ``name``). Its bytes are the file's, never a template."""
        if "name" in self.params:
            return True
        declared = self.header("content-disposition")
        if declared is None:
            return False
        parsed = policy.default.header_factory("content-disposition", declared.value)
        assert isinstance(parsed, ContentDispositionHeader)
        return parsed.content_disposition == "attachment" or "filename" in parsed.params

    def header(self, key: str) -> Header | None:
        return next((header for header in self.headers if header.key == key), None)


def crlf(raw: bytes) -> bytes:
    """Every line end (CRLF, LF, or a Mac's CR) made CRLF."""
    return raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def parse_message(raw: bytes) -> Entity:
    data = crlf(raw)
    head, separator, body = data.partition(b"\r\n\r\n")
    if not separator or not head.strip():
        raise TemplateError(
            "the message file has no header section: save the message as .eml "
            "(headers, a blank line, then the body)"
        )
    return _entity(split_headers(head), body, "the message", "text/plain")


def split_headers(head: bytes) -> tuple[Header, ...]:
    """The header section (CRLF line ends) cut into headers, folding kept."""
    names: list[str] = []
    blocks: list[list[bytes]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and blocks:
            blocks[-1].append(line)
            continue
        name, colon, _ = line.partition(b":")
        name = name.rstrip(b" \t")
        if not colon or not _HEADER_NAME.fullmatch(name):
            raise TemplateError(f"the message has a malformed header line: {line[:60]!r}")
        names.append(name.decode("ascii"))
        blocks.append([line])
    return tuple(
        Header(name, b"\r\n".join(lines)) for name, lines in zip(names, blocks, strict=True)
    )


def _entity(headers: tuple[Header, ...], body: bytes, where: str, default: str) -> Entity:
    content_type, params = default, {}
    declared = next((h for h in headers if h.key == "content-type"), None)
    if declared is not None:
        parsed = policy.default.header_factory("content-type", declared.value)
        assert isinstance(parsed, ContentTypeHeader)
        content_type, params = parsed.content_type, dict(parsed.params)
    if not content_type.startswith("multipart/"):
        return Entity(headers, body, where, content_type, params)
    boundary = params.get("boundary")
    if not boundary:
        raise TemplateError(
            f"{where} is {content_type} but its Content-Type has no boundary parameter: "
            "the parts cannot be told apart; save the message again from your mail program"
        )
    preamble, parts, epilogue = _split_multipart(body, boundary, where, content_type)
    subtype_default = "message/rfc822" if content_type == "multipart/digest" else "text/plain"
    children = tuple(
        _part(part, f"{_prefix(where)}{index}", subtype_default)
        for index, part in enumerate(parts, 1)
    )
    return Entity(headers, b"", where, content_type, params, children, preamble, epilogue)


def _prefix(where: str) -> str:
    return "part " if where == "the message" else where + "."


def _part(data: bytes, where: str, default: str) -> Entity:
    if data.startswith(b"\r\n"):
        return _entity((), data[2:], where, default)
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        headers = split_headers(head)
    except TemplateError as error:
        raise TemplateError(f"{where}: {error}") from None
    return _entity(headers, body, where, default)


def _split_multipart(
    body: bytes, boundary: str, where: str, content_type: str
) -> tuple[bytes, list[bytes], bytes]:
    """(preamble, parts, epilogue); each delimiter's leading CRLF belongs to it (RFC 2046
    §5.1.1), so a part's body is exactly the bytes between two delimiter lines."""
    delimiter = re.compile(
        rb"(?:^|\r\n)--" + re.escape(boundary.encode("utf-8")) + rb"(--)?[ \t]*(?=\r\n|$)"
    )
    matches = list(delimiter.finditer(body))
    closing = next((i for i, m in enumerate(matches) if m.group(1)), None)
    if closing is None:
        raise TemplateError(
            f"{where} ({content_type}) has no closing boundary line --{boundary}--: "
            "the file looks truncated; save the message again"
        )
    if closing == 0:
        raise TemplateError(f"{where} ({content_type}) has no parts")
    matches = matches[: closing + 1]
    parts = [body[start.end() + 2 : end.start()] for start, end in itertools.pairwise(matches)]
    first = matches[0].start()
    if body[first : first + 2] == b"\r\n":
        first += 2  # the line end before the first delimiter ends the preamble's last line
    return body[:first], parts, body[matches[-1].end() :]
