"""DKIM key files parsed through ``cryptography`` (OpenSSL): the part of :mod:`core.dkim`
that needs it, imported by :class:`core.dkim.DKIMSigner` only when a key is loaded, so
that a campaign without DKIM (and every ``mxmailer`` start) never pays the ~20-50 ms of
importing ``cryptography``.

Owns reading one key file's bytes as a key (PEM PKCS#1, PKCS#8 RSA or Ed25519, Ed25519
version 2, dknewkey's base64 Ed25519) and the key objects that sign; the file checks,
the messages for the user and the signing itself stay in :mod:`core.dkim`. Never puts
key material in an exception or a ``repr``: errors raised while parsing are replaced
(``from None``), not chained.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Final

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import (
    dsa,
    ec,
    ed448,
    ed25519,
    padding,
    rsa,
    x448,
    x25519,
)

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)
_WHITESPACE = re.compile(rb"\s+")
# RFC 6376 §3.3.1: rsa-sha256 is RSASSA-PKCS1-v1_5 (RFC 8017 §8.2) with SHA-256.
_PKCS1_V1_5: Final = padding.PKCS1v15()
_SHA256: Final = hashes.SHA256()
_ED25519_SEED = 32
# An Ed25519 seed and its public key in an RFC 5958 OneAsymmetricKey version 2 (RFC 8410
# §7): the public key [1] IMPLICIT as RFC 5958 has it, or [1] EXPLICIT as ring writes it.
# cryptography 45 to 50 refuse version 2 (pyca/cryptography#15631, fixed by #15635), so
# this one layout is read here when cryptography cannot; the SEQUENCE length is checked too.
_ED25519_V2 = re.compile(
    rb"\x30[\x51\x53]\x02\x01\x01\x30\x05\x06\x03\x2b\x65\x70\x04\x22\x04\x20(.{32})"
    rb"(?:\x81\x21\x00|\xa1\x23\x03\x21\x00)(.{32})",
    re.DOTALL,
)
# What a loaded key of another type is, for the error.
_OTHER_KEYS: Final = (
    (ec.EllipticCurvePrivateKey, "an elliptic-curve (ECDSA) key"),
    (ed448.Ed448PrivateKey, "an Ed448 key"),
    (x25519.X25519PrivateKey, "an X25519 key"),
    (x448.X448PrivateKey, "an X448 key"),
    (dsa.DSAPrivateKey, "a DSA key"),
)


class NotAKey(Exception):
    """The content is not a key we read; ``reason`` (may be empty) says what it is instead.
    Never carries key material."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class RSAKey:
    __slots__ = ("_key", "bits", "description", "public")
    algorithm = b"rsa-sha256"
    kind = "rsa"

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self._key = key
        self.bits = key.key_size
        self.description = f"RSA-{self.bits}"
        spki = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public = base64.b64encode(spki).decode("ascii")

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data, _PKCS1_V1_5, _SHA256)

    def __repr__(self) -> str:
        return f"<{self.description} private key>"


class Ed25519Key:
    __slots__ = ("_key", "public")
    algorithm = b"ed25519-sha256"
    kind = "ed25519"
    description = "Ed25519"

    def __init__(self, key: ed25519.Ed25519PrivateKey) -> None:
        self._key = key
        self.public = base64.b64encode(key.public_key().public_bytes_raw()).decode("ascii")

    def sign(self, data: bytes) -> bytes:
        # RFC 8463 §3: PureEdDSA (RFC 8032 §5.1.6) over the SHA-256 hash of what rsa-sha256
        # would sign, not over the data itself (dkimpy signs and verifies the same way).
        return self._key.sign(hashlib.sha256(data).digest())

    def __repr__(self) -> str:
        return "<Ed25519 private key>"


# PEM labels (RFC 7468) of the blocks given to cryptography, the first found being used.
_PRIVATE_PEM = ("PRIVATE KEY", "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY")
_OTHER_PEM = {
    "OPENSSH PRIVATE KEY": "it is an SSH key; DKIM needs a key of its own",
    "EC PRIVATE KEY": "it is an elliptic-curve key; DKIM signs with RSA or Ed25519",
    "PUBLIC KEY": "it is a public key; the private key signs, the public key goes in DNS",
    "RSA PUBLIC KEY": "it is a public key; the private key signs, the public key goes in DNS",
    "CERTIFICATE": "it is a certificate",
}


def parse_key(data: bytes) -> RSAKey | Ed25519Key:
    """The key in a key file's ``data``; ``NotAKey`` if there is none we can use."""
    blocks = {block[1].decode("ascii"): block for block in _PEM_BLOCK.finditer(data)}
    for label in _PRIVATE_PEM:
        if label in blocks:
            return _pem_key(blocks[label][0], blocks[label][2])
    for label in blocks:
        if label in _OTHER_PEM:
            raise NotAKey(_OTHER_PEM[label])
    if blocks or b"-----BEGIN" in data:
        raise NotAKey("it holds no PEM private key")
    return _ed25519_from_base64(data)


def _pem_key(pem: bytes, body: bytes) -> RSAKey | Ed25519Key:
    """The key in one PEM block (``body``: what is between its BEGIN and END lines)."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:  # what cryptography raises for an encrypted key and no password
        raise NotAKey(
            "it is encrypted with a passphrase; MX Mailer reads unencrypted keys protected by "
            "file permissions: decrypt a copy with `openssl pkey -in KEY -out dkim.pem`, "
            "then chmod 600 it"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        return _unloadable(pem, body)
    if isinstance(key, rsa.RSAPrivateKey):
        return RSAKey(key)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return Ed25519Key(key)
    kind = next((name for type_, name in _OTHER_KEYS if isinstance(key, type_)), None)
    raise NotAKey(f"it is {kind or 'a key of an unknown type'}; DKIM signs with RSA or Ed25519")


def _unloadable(pem: bytes, body: bytes) -> Ed25519Key:
    """The Ed25519 version 2 key that cryptography did not load, or ``NotAKey`` with the
    best reason found."""
    try:
        der = base64.b64decode(_WHITESPACE.sub(b"", body), validate=True)
    except (binascii.Error, ValueError):
        raise NotAKey("its PEM content is not base64") from None
    v2 = _ED25519_V2.fullmatch(der)
    if v2 is not None and der[1] == len(der) - 2:
        return _ed25519_key(v2[1], v2[2])
    try:
        # cryptography checks an RSA key's numbers (OpenSSL's RSA_check_key) before using
        # it: a key that loads only without that check is damaged, and would sign every
        # message of a campaign with signatures that no receiver can verify.
        unchecked = serialization.load_pem_private_key(
            pem, password=None, unsafe_skip_rsa_key_validation=True
        )
    except (TypeError, ValueError, UnsupportedAlgorithm):
        raise NotAKey() from None
    if isinstance(unchecked, rsa.RSAPrivateKey):
        raise NotAKey("its RSA numbers do not belong together: the file is damaged")
    raise NotAKey()


def _ed25519_from_base64(data: bytes) -> Ed25519Key:
    """dkimpy's format (``dknewkey --ktype ed25519``): base64 of the 32-octet seed; or of
    seed and public key (64 octets, libsodium's secret key), the public half checked."""
    try:
        raw = base64.b64decode(_WHITESPACE.sub(b"", data), validate=True)
    except (binascii.Error, ValueError):
        raise NotAKey() from None
    if len(raw) == _ED25519_SEED:
        return _ed25519_key(raw)
    if len(raw) == 2 * _ED25519_SEED:
        return _ed25519_key(raw[:_ED25519_SEED], raw[_ED25519_SEED:])
    raise NotAKey()


def _ed25519_key(seed: bytes, public: bytes | None = None) -> Ed25519Key:
    """The key of a 32-octet seed (RFC 8032 §5.1.5), checked against ``public`` if given."""
    key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    if public is not None and key.public_key().public_bytes_raw() != public:
        raise NotAKey("its Ed25519 public half does not match its private half")
    return Ed25519Key(key)
