"""DKIM signing (RFC 6376): one ``DKIM-Signature`` header per rendered message.

Owns the signing key (read once from its file, checked, parsed once), the checks a user
needs before a campaign (key size, file permissions, selector and domain syntax, DMARC
alignment with the From domain), the TXT record to publish, and the per-message work:
relaxed/relaxed canonicalisation, the body hash (bodies are personalised, so it is
computed for every message), the header hash and the signature.

Keys are loaded and used through ``cryptography`` (OpenSSL), in :mod:`core.dkim_keys`,
imported only when a key is loaded (importing cryptography costs ~20-50 ms that a
campaign without DKIM, and every start, should not pay): an RSA-2048 signature costs
0.25 ms where dkimpy's pure-Python RSA costs 6.5 ms, an Ed25519 one 30 µs; a 6 KB message
signs in 0.3 ms and 80 µs (bench/dkim_sign.py). Canonicalisation is done here with C-speed
``bytes`` operations that the unit tests hold equal to dkimpy's: its regexes take 130 µs
for a 6 KB body and 17 µs for nine headers; these take 11 and 6 µs. dkimpy, the tests'
reference verifier, is never imported here.

Accepted key files (see :class:`DKIMSigner`): PEM PKCS#1 ``RSA PRIVATE KEY``, PEM PKCS#8
``PRIVATE KEY`` holding RSA (RSA-PSS keys are used as their RSA numbers) or Ed25519 (also
version 2, with its public key), or a base64 Ed25519 key as ``dknewkey`` writes it (the
32-byte seed, or seed and public key, 64 bytes). Encrypted keys are refused.

It never logs, and never puts key material in an exception, a ``repr`` or a warning:
messages name the file, never its content, and errors raised while parsing the key are
replaced (``from None``), not chained. It never touches DNS or the network, never
changes the message beyond prepending the signature (and the final CRLF that SMTP would
add anyway), and never imports Qt.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import stat
import time
from pathlib import Path
from typing import Final, Protocol

# ---- limits and names ----------------------------------------------------------------------

#: RFC 8301 §3.2: signers MUST use RSA keys of at least 1024 bits ...
MIN_RSA_BITS: Final = 1024
#: ... and SHOULD use at least 2048.
RECOMMENDED_RSA_BITS: Final = 2048
#: RFC 8301 §3.2: verifiers MUST handle 1024-4096 bits; larger keys MAY fail.
MAX_VERIFIED_RSA_BITS: Final = 4096
#: A key file is a few KB; anything bigger was chosen by mistake (and is not read whole).
MAX_KEY_FILE: Final = 64 * 1024
#: Header fields signed when present, in this order (RFC 6376 §5.4.1; RFC 8058 §4 needs
#: List-Unsubscribe and List-Unsubscribe-Post signed for one-click unsubscribe).
SIGNED_HEADERS: Final = (
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
)
#: RFC 5322 §2.1.1: lines SHOULD be at most 78 characters; the signature is folded to fit.
MAX_HEADER_LINE: Final = 78
#: RFC 1035 §2.3.4: a name is at most 253 characters as text, a label 1-63.
MAX_NAME_LENGTH: Final = 253

_FOLD: Final = b"\r\n "
_SIGNED_ORDER: Final = tuple(name.encode() for name in SIGNED_HEADERS)
_SIGNED: Final = frozenset(_SIGNED_ORDER)
# Where a header field starts: after a CRLF that no WSP follows (RFC 5322 §2.2.3).
_FIELD_START = re.compile(rb"\r\n(?![ \t])")
# RFC 5321 §4.1.2 (Let-dig [Ldh-str]), which RFC 6376 §3.1 uses for selectors and d=.
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
# Relaxed body (RFC 6376 §3.4.4): a run of WSP that is not already one space becomes one.
_WSP_RUN = re.compile(rb"\t[ \t]*| [ \t]+")

_NEW_KEY_HINT = "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out dkim.pem"


class DKIMError(ValueError):
    """DKIM cannot sign: the text names the problem and the fix, never the key itself."""


# ---- canonical forms (RFC 6376 §3.4) -------------------------------------------------------


def relaxed_header(name: bytes, value: bytes) -> bytes:
    """The relaxed canonical form (RFC 6376 §3.4.2) of a CRLF-only header field, ``value``
    being all after its colon, folds included: ``name:value`` in CRLF."""
    value = value.replace(b"\r\n", b"")
    if b"\t" in value or b"  " in value:
        value = _WSP_RUN.sub(b" ", value)
    return name.rstrip(b" \t").lower() + b":" + value.strip(b" \t") + b"\r\n"


def relaxed_body(body: bytes) -> bytes:
    """The relaxed canonical body (RFC 6376 §3.4.4) of a CRLF-only ``body``.

    Whitespace runs become one space, whitespace at line ends goes, empty lines at the end
    go; a body that does not end in CRLF is taken with one (what SMTP transmits); an empty
    result stays empty (as dkimpy hashes it). Most messages need no substitution: the
    ``in`` tests let them through at memory speed.
    """
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    if b"\t" in body or b"  " in body:
        body = _WSP_RUN.sub(b" ", body)
    if b" \r\n" in body:
        body = body.replace(b" \r\n", b"\r\n")
    body = body.rstrip(b"\r\n")  # CRLF-only: what ends the body is whole CRLFs
    return body + b"\r\n" if body else b""


def _crlf_only(data: bytes) -> bool:
    crlf = data.count(b"\r\n")
    return data.count(b"\n") == crlf and data.count(b"\r") == crlf


# ---- keys ------------------------------------------------------------------------------------


class _PrivateKey(Protocol):
    #: The a= value (RFC 6376 §3.5; RFC 8463 §3).
    algorithm: bytes
    #: The k= value of the DNS record (RFC 6376 §3.6.1).
    kind: str
    #: For people: ``RSA-2048``, ``Ed25519``.
    description: str
    #: The p= value: base64 of the public key (SubjectPublicKeyInfo for RSA, RFC 6376
    #: §3.6.1; the raw 32 octets for Ed25519, RFC 8463 §4).
    public: str

    def sign(self, data: bytes) -> bytes: ...


def _read_key_file(path: Path) -> bytes:
    """The file's bytes, after the checks that need no parsing (exists, readable, not
    readable by others, not huge)."""
    try:
        with path.open("rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise DKIMError(f"the DKIM key file {path} is not a file: give the key file")
            if os.name != "nt" and info.st_mode & 0o077:
                raise DKIMError(
                    f"the DKIM key file {path} can be read or changed by other users "
                    f"(permissions {stat.S_IMODE(info.st_mode):04o}): "
                    f"run `chmod 600 {path}` so that only its owner can read it"
                )
            data = file.read(MAX_KEY_FILE + 1)
    except FileNotFoundError:
        raise DKIMError(
            f"the DKIM key file {path} does not exist: check the path, or make a key "
            f"with `{_NEW_KEY_HINT}` and publish its TXT record"
        ) from None
    except IsADirectoryError:
        raise DKIMError(f"the DKIM key file {path} is not a file: give the key file") from None
    except PermissionError:
        raise DKIMError(
            f"the DKIM key file {path} cannot be read (permission denied): run MX Mailer as "
            "the key's owner, or give that user read access to the file (and only that user)"
        ) from None
    except OSError as error:
        raise DKIMError(f"the DKIM key file {path} cannot be read: {error.strerror}") from None
    if len(data) > MAX_KEY_FILE:
        raise _not_a_key(path, f"it is over {MAX_KEY_FILE // 1024} KB; a key is a few KB")
    if not data.strip():
        raise _not_a_key(path, "it is empty")
    return data


def _not_a_key(path: Path, reason: str = "") -> DKIMError:
    detail = f" ({reason})" if reason else ""
    return DKIMError(
        f"the DKIM key file {path} is not a private key{detail}: expected a PEM RSA key or "
        "an Ed25519 key (PEM, or the base64 key that dknewkey writes); "
        f"make one with `{_NEW_KEY_HINT}`"
    )


# ---- names ---------------------------------------------------------------------------------


def _dns_name(text: str, *, labels: int) -> str | None:
    """``text`` as a lower-case DNS name of at least ``labels`` LDH labels (a trailing
    dot dropped), or ``None``."""
    name = text.strip().lower().removesuffix(".")
    parts = name.split(".")
    if (
        not name.isascii()
        or len(name) > MAX_NAME_LENGTH
        or len(parts) < labels
        or not all(_LABEL.match(part) for part in parts)
        or (labels > 1 and parts[-1].isdigit())  # an IP address is not a domain
    ):
        return None
    return name


def _parent_or_same(domain: str, child: str) -> bool:
    return child == domain or child.endswith("." + domain)


# ---- the signer ----------------------------------------------------------------------------


class DKIMSigner:
    """Signs messages for ``domain`` with the key in ``key_file``, published at
    ``selector._domainkey.domain``.

    The key file is read and checked once, here; ``DKIMError`` says what is wrong and how
    to fix it: missing or unreadable, readable by group or others (POSIX only: on Windows
    the ACLs are the user's business), not a key we read, RSA under 1024 bits, a selector
    or domain that is not a DNS name. What should be fixed but need not stop a campaign
    (RSA under 2048 or over 4096 bits) is in ``warnings``; DMARC alignment is checked
    against a From domain with :meth:`check_alignment`.

    Every present header of :data:`SIGNED_HEADERS` is signed, and each is *oversigned*
    (named in h= once more than it occurs) so that a header added later, a second
    Subject or From or List-Unsubscribe slipped into a replayed message, breaks the
    signature (RFC 6376 §8.15). Headers not in the list (Received, X-*) may be added or
    changed in transit without breaking it.
    """

    __slots__ = ("_key", "_prefix", "domain", "key_file", "selector", "warnings")

    def __init__(self, key_file: str | os.PathLike[str], *, selector: str, domain: str) -> None:
        path = Path(key_file)
        checked_selector = _dns_name(selector, labels=1)
        if checked_selector is None:
            raise DKIMError(
                f"the DKIM selector {selector!r} is not a DNS name: use letters, digits and "
                "hyphens (dots separate labels), e.g. 'mx2025'"
            )
        checked_domain = _dns_name(domain, labels=2)
        if checked_domain is None:
            raise DKIMError(
                f"the DKIM domain {domain!r} is not a domain name: give the domain you send "
                "from, e.g. 'example.com' (an international name in its xn-- form)"
            )
        txt_name = f"{checked_selector}._domainkey.{checked_domain}"
        if len(txt_name) > MAX_NAME_LENGTH:
            raise DKIMError(
                f"the DKIM record name {txt_name} is over {MAX_NAME_LENGTH} characters: "
                "use a shorter selector"
            )
        data = _read_key_file(path)
        # Imported here: cryptography costs every start ~20-50 ms; only a key needs it.
        from core import dkim_keys

        try:
            key = dkim_keys.parse_key(data)
        except dkim_keys.NotAKey as error:
            raise _not_a_key(path, error.reason) from None
        warnings = []
        if isinstance(key, dkim_keys.RSAKey):
            if key.bits < MIN_RSA_BITS:
                raise DKIMError(
                    f"the DKIM key in {path} is {key.description}: receivers reject keys "
                    f"under {MIN_RSA_BITS} bits (RFC 8301): make a 2048-bit key with "
                    f"`{_NEW_KEY_HINT}` and publish its TXT record"
                )
            if key.bits < RECOMMENDED_RSA_BITS:
                warnings.append(
                    f"the DKIM key in {path} is {key.description}: {RECOMMENDED_RSA_BITS} bits "
                    "or more are recommended (RFC 8301) and some receivers distrust shorter "
                    f"keys: make a new key with `{_NEW_KEY_HINT}`"
                )
            elif key.bits > MAX_VERIFIED_RSA_BITS:
                warnings.append(
                    f"the DKIM key in {path} is {key.description}: receivers need only verify "
                    f"keys up to {MAX_VERIFIED_RSA_BITS} bits (RFC 8301) and some will fail "
                    "this one: 2048 bits is usual"
                )
        self._key: _PrivateKey = key
        self.key_file = path
        self.selector = checked_selector
        self.domain = checked_domain
        self.warnings: tuple[str, ...] = tuple(warnings)
        # Constant for every message: the start of the header, folded, and its column.
        self._prefix = _Folder()
        for tag in (b"v=1", b"a=" + key.algorithm, b"c=relaxed/relaxed"):
            self._prefix.add(b" " + tag + b";")
        self._prefix.add(b" d=" + checked_domain.encode() + b";")
        self._prefix.add(b" s=" + checked_selector.encode() + b";")

    @property
    def algorithm(self) -> str:
        """The a= value: ``rsa-sha256`` or ``ed25519-sha256``."""
        return self._key.algorithm.decode()

    @property
    def key_description(self) -> str:
        """``RSA-2048``, ``Ed25519``…"""
        return self._key.description

    def txt_name(self) -> str:
        """Where the public key is published (RFC 6376 §3.6.2.1)."""
        return f"{self.selector}._domainkey.{self.domain}"

    def public_txt_record(self) -> str:
        """The TXT value to publish at :meth:`txt_name`. An RSA-2048 value is over 255
        characters: DNS providers split it into several strings, which is fine."""
        return f"v=DKIM1; k={self._key.kind}; p={self._key.public}"

    def check_alignment(self, from_domain: str) -> str | None:
        """``None`` if this signature aligns with mail From ``from_domain`` for DMARC
        (d= is that domain or a parent of it, RFC 7489 §3.1.1), else a warning to show.
        An address works too: its domain is taken. (Relaxed alignment also accepts a
        sibling under the same organisational domain; that needs the Public Suffix List,
        so it is reported here, not assumed.)"""
        sender = from_domain.rpartition("@")[2].strip().lower().removesuffix(".")
        if _parent_or_same(self.domain, sender):
            return None
        return (
            f"the DKIM domain {self.domain} is neither the From domain {sender} nor a parent "
            f"of it, so DMARC may not count this signature: sign with d={sender} or a parent "
            f"domain of it, or send From an address at {self.domain}"
        )

    def sign(self, message: bytes, *, at: float | None = None) -> bytes:
        """``message`` (CRLF line ends only) with a ``DKIM-Signature`` header first.

        ``at``: the signing time (t=), now by default; the same message signed at the
        same second gives the same bytes (both algorithms are deterministic), so a retry
        can re-sign with the first attempt's time and send what it sent before. A message
        that does not end in CRLF gets one, as SMTP would add it. ``DKIMError`` if the
        message has a lone CR or LF, a malformed header line, or not exactly one From.
        """
        if not _crlf_only(message):
            raise DKIMError(
                "the message has a line end that is not CRLF: it would be changed in "
                "transit and fail DKIM; sign the message exactly as it is sent"
            )
        if message and not message.endswith(b"\r\n"):
            message += b"\r\n"
        head, body = _split(message)
        names, signed = _signed_fields(head)
        body_hash = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest())
        header = self._prefix.copy()
        header.add(b" t=%d;" % int(time.time() if at is None else at))
        last = len(names) - 1
        for number, name in enumerate(names):
            header.add((b" h=" if number == 0 else b"") + name + (b";" if number == last else b":"))
        header.add(b" bh=" + body_hash + b";")
        header.add(b" b=")
        unsigned = header.value()
        # RFC 6376 §3.7: the signed fields, then this one with b= empty and no final CRLF.
        data = signed + relaxed_header(b"DKIM-Signature", unsigned).removesuffix(b"\r\n")
        signature = self._key.sign(data)
        header.wrap(base64.b64encode(signature))
        return b"DKIM-Signature:" + header.value() + b"\r\n" + message

    def __repr__(self) -> str:
        return (
            f"DKIMSigner(domain={self.domain!r}, selector={self.selector!r}, "
            f"key={self._key.description}, key_file={str(self.key_file)!r})"
        )


def _split(message: bytes) -> tuple[bytes, bytes]:
    """(header section without its last CRLF, body) of a CRLF-terminated message."""
    if message.startswith(b"\r\n"):
        return b"", message[2:]
    end = message.find(b"\r\n\r\n")
    if end < 0:
        return message[:-2], b""
    return message[:end], message[end + 4 :]


def _signed_fields(head: bytes) -> tuple[list[bytes], bytes]:
    """(h= names, the canonical fields they select, in the order hashed) for ``head``.

    Each present name of SIGNED_HEADERS is listed once per occurrence plus once more
    (oversigning); its fields are hashed last occurrence first (RFC 6376 §5.4.2).
    """
    if head[:1] in (b" ", b"\t"):
        raise DKIMError("the message's header section starts with a continuation line")
    found: dict[bytes, list[bytes]] = {}
    for field in _FIELD_START.split(head) if head else ():
        name, colon, value = field.partition(b":")
        key = name.rstrip(b" \t").lower()
        if not colon or not key or b"\n" in key:
            raise DKIMError(f"the message has a malformed header line: {field[:60]!r}")
        if key in _SIGNED:
            found.setdefault(key, []).append(relaxed_header(key, value))
    froms = len(found.get(b"from", ()))
    if froms != 1:
        raise DKIMError(
            "the message has no From header: DKIM signs From (RFC 6376 §5.4)"
            if froms == 0
            else f"the message has {froms} From headers: it must have one (RFC 5322 §3.6)"
        )
    names: list[bytes] = []
    signed: list[bytes] = []
    for key in _SIGNED_ORDER:
        fields = found.get(key)
        if fields:
            names += [key] * (len(fields) + 1)
            signed += reversed(fields)
    return names, b"".join(signed)


class _Folder:
    """A header value built from pieces, folded (CRLF SP before a piece) so that lines
    stay within MAX_HEADER_LINE. A piece may start with the space that separates it."""

    __slots__ = ("_column", "_parts")

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._column = len(b"DKIM-Signature:")

    def copy(self) -> _Folder:
        folder = _Folder()
        folder._parts = self._parts.copy()
        folder._column = self._column
        return folder

    def add(self, piece: bytes) -> None:
        if self._column + len(piece) > MAX_HEADER_LINE and self._column > 1:
            piece = piece.removeprefix(b" ")
            self._parts.append(_FOLD)
            self._column = 1
        self._parts.append(piece)
        self._column += len(piece)

    def wrap(self, text: bytes) -> None:
        """``text`` (base64: folding whitespace is ignored in it) across as many lines as
        it takes, filling each."""
        while text:
            room = MAX_HEADER_LINE - self._column
            if room <= 0:
                self._parts.append(_FOLD)
                self._column = 1
                continue
            self._parts.append(text[:room])
            self._column += len(text[:room])
            text = text[room:]

    def value(self) -> bytes:
        return b"".join(self._parts)
