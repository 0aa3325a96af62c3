"""DKIM signing (``core.dkim``) without a network: loading and checking key files, the
TXT record, the form of the signature, and canonicalisation held equal to dkimpy's.
Signatures verified by dkimpy against the lab DNS server: tests/integration/test_dkim.py.

Key files are written here with ``cryptography`` (which ``core.dkim`` also loads them
with), ``openssl`` where a test says so (skipped when it is missing), or by hand; what they
must give is worked out independently: Ed25519 public keys with PyNaCl, and every signature
verified by dkimpy (pure-Python RSA, PyNaCl's Ed25519).
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import re
import shutil
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import dkim
import dkim.dknewkey
import nacl.signing
import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x25519
from dkim.canonicalization import Relaxed
from hypothesis import given
from hypothesis import strategies as st

from core.dkim import (
    MAX_KEY_FILE,
    SIGNED_HEADERS,
    DKIMError,
    DKIMSigner,
    relaxed_body,
    relaxed_header,
)

SHARED_MESSAGES = Path(__file__).resolve().parents[3] / "shared" / "data" / "messages"
DOMAIN = "sender.test"
SELECTOR = "s2026"
NOT_A_KEY = "is not a private key"
EXPECTED = "expected a PEM RSA key or an Ed25519 key"
ED25519_SEED = bytes(range(1, 33))
#: Its public key, by PyNaCl (libsodium): not by cryptography, which core.dkim uses.
ED25519_PUBLIC = bytes(nacl.signing.SigningKey(ED25519_SEED).verify_key)
REPOSITORY = Path(__file__).resolve().parents[2]
WINDOWS = os.name == "nt"
AT = 1_790_000_000

MESSAGE = (
    b"From: Example Club <news@sender.test>\r\n"
    b"To: <reader@example.test>\r\n"
    b"Subject: The November newsletter\r\n"
    b"Date: Wed, 25 Nov 2026 09:00:00 +0000\r\n"
    b"Message-ID: <0123456789abcdef@sender.test>\r\n"
    b"X-Campaign: november\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hello reader,\r\n\r\nThe newsletter.\r\n"
)

PEM = serialization.Encoding.PEM
PKCS8 = serialization.PrivateFormat.PKCS8
PKCS1 = serialization.PrivateFormat.TraditionalOpenSSL
OPENSSH = serialization.PrivateFormat.OpenSSH
CLEAR = serialization.NoEncryption()
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


# ---- keys and key files ----------------------------------------------------------------------


def small_rsa_key(bits: int, seed: int = 5) -> rsa.RSAPrivateKey:
    """An RSA key too small for ``generate_private_key``, from primes found here."""
    rng = random.Random(seed)

    def prime(size: int) -> int:
        while True:
            n = rng.getrandbits(size) | 3 << (size - 2) | 1
            if all(pow(a, n - 1, n) == 1 for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)):
                return n

    p, q = prime(bits // 2), prime(bits // 2)
    d = pow(65537, -1, (p - 1) * (q - 1))
    public = rsa.RSAPublicNumbers(65537, p * q)
    numbers = rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), public)
    return numbers.private_key(unsafe_skip_rsa_key_validation=True)


@pytest.fixture(scope="module")
def rsa2048() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


@pytest.fixture(scope="module")
def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(ED25519_SEED)


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(scope="module")
def ed_signer(tmp_path_factory: pytest.TempPathFactory) -> DKIMSigner:
    return signer(write(tmp_path_factory.mktemp("ed"), base64.b64encode(ED25519_SEED)))


def write(directory: Path, data: bytes, name: str = "dkim.pem", mode: int = 0o600) -> Path:
    path = directory / name
    path.write_bytes(data)
    path.chmod(mode)
    return path


def pem(
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey, fmt: serialization.PrivateFormat
) -> bytes:
    return key.private_bytes(PEM, fmt, CLEAR)


def signer(path: Path, selector: str = SELECTOR, domain: str = DOMAIN) -> DKIMSigner:
    return DKIMSigner(path, selector=selector, domain=domain)


def spki_base64(key: rsa.RSAPrivateKey) -> str:
    der = key.public_key().public_bytes(serialization.Encoding.DER, SPKI)
    return base64.b64encode(der).decode()


def load_error(path: Path, **names: str) -> DKIMError:
    with pytest.raises(DKIMError) as caught:
        signer(path, **names)
    return caught.value


def txt_lookup(record: str) -> Callable[..., bytes]:
    """An in-memory TXT lookup for dkimpy: unit tests only; the integration tests ask the
    lab DNS server over UDP."""

    def lookup(name: bytes, timeout: float = 5) -> bytes:
        assert name == f"{SELECTOR}._domainkey.{DOMAIN}.".encode()
        return record.encode()

    return lookup


def verifies(dkim_signer: DKIMSigner, signed: bytes) -> bool:
    return bool(dkim.DKIM(signed).verify(dnsfunc=txt_lookup(dkim_signer.public_txt_record())))


def tags(signed: bytes) -> dict[str, str]:
    """The DKIM-Signature's tags, unfolded, whitespace removed."""
    head = signed.partition(b"\r\n\r\n")[0].decode()
    field = re.match(r"DKIM-Signature:(.*?)\r\n(?![ \t])", head + "\r\n", re.DOTALL)
    assert field is not None
    pairs = (part.split("=", 1) for part in field.group(1).split(";") if part.strip())
    return {name.strip(): re.sub(r"\s+", "", value) for name, value in pairs}


# ---- accepted key files -----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [PKCS1, PKCS8], ids=["pkcs1", "pkcs8"])
def test_rsa_pem_keys_publish_their_subject_public_key_info(
    key_dir: Path, rsa2048: rsa.RSAPrivateKey, fmt: serialization.PrivateFormat
) -> None:
    loaded = signer(write(key_dir, pem(rsa2048, fmt)))
    assert loaded.algorithm == "rsa-sha256"
    assert loaded.key_description == "RSA-2048"
    assert loaded.warnings == ()
    assert loaded.public_txt_record() == f"v=DKIM1; k=rsa; p={spki_base64(rsa2048)}"
    assert loaded.txt_name() == f"{SELECTOR}._domainkey.{DOMAIN}"


def ed25519_files() -> dict[str, bytes]:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(ED25519_SEED)
    return {
        "pkcs8-pem": pem(key, PKCS8),
        "base64-seed": base64.b64encode(ED25519_SEED) + b"\n",
        "base64-seed-and-public": base64.b64encode(ED25519_SEED + ED25519_PUBLIC),
        "pkcs8-v2-with-public-key": pkcs8_v2(ED25519_SEED, ED25519_PUBLIC),
        "pkcs8-v2-as-ring-writes-it": pkcs8_v2(ED25519_SEED, ED25519_PUBLIC, explicit=True),
    }


def pkcs8_v2(
    seed: bytes, public: bytes, *, explicit: bool = False, length: int | None = None
) -> bytes:
    """RFC 8410 §7 OneAsymmetricKey version 2: the seed and [1] the public key, which
    neither cryptography nor openssl write, and cryptography 45-50 do not read; ring writes
    it with the [1] tag EXPLICIT (a BIT STRING inside) rather than IMPLICIT. ``length``:
    the SEQUENCE length to declare, if not the true one."""
    tagged = (b"\xa1\x23\x03\x21\x00" if explicit else b"\x81\x21\x00") + public
    content = bytes.fromhex("020101300506032b657004220420") + seed + tagged
    declared = len(content) if length is None else length
    body = base64.encodebytes(bytes((0x30, declared)) + content)
    return b"-----BEGIN PRIVATE KEY-----\n" + body + b"-----END PRIVATE KEY-----\n"


@pytest.mark.parametrize("name", sorted(ed25519_files()))
def test_ed25519_keys_in_each_accepted_form(key_dir: Path, name: str) -> None:
    loaded = signer(write(key_dir, ed25519_files()[name]))
    assert loaded.algorithm == "ed25519-sha256"
    assert loaded.key_description == "Ed25519"
    public = base64.b64encode(ED25519_PUBLIC).decode()
    assert loaded.public_txt_record() == f"v=DKIM1; k=ed25519; p={public}"
    assert verifies(loaded, loaded.sign(MESSAGE, at=AT))


def test_the_key_dknewkey_writes(key_dir: Path) -> None:
    path = key_dir / "dknewkey.key"
    made = dkim.dknewkey.GenEd25519Keys(str(path), verbose=False)
    loaded = signer(path)
    public = base64.b64encode(bytes(made.verify_key)).decode()
    assert loaded.public_txt_record() == f"v=DKIM1; k=ed25519; p={public}"


def test_a_pem_file_with_crlf_lines_and_a_certificate_before_the_key(
    key_dir: Path, rsa2048: rsa.RSAPrivateKey
) -> None:
    certificate = trustme.CA().cert_pem.bytes()
    data = (certificate + pem(rsa2048, PKCS8)).replace(b"\n", b"\r\n")
    assert signer(write(key_dir, data)).public_txt_record().endswith(spki_base64(rsa2048))


OPENSSL = shutil.which("openssl")


@pytest.mark.skipif(OPENSSL is None, reason="the openssl command is not installed")
@pytest.mark.parametrize(
    ("arguments", "algorithm"),
    [
        (["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"], "rsa-sha256"),
        (["genrsa", "-traditional", "2048"], "rsa-sha256"),
        (["genpkey", "-algorithm", "ed25519"], "ed25519-sha256"),
    ],
    ids=["genpkey-rsa", "genrsa-traditional", "genpkey-ed25519"],
)
def test_keys_made_by_openssl(key_dir: Path, arguments: list[str], algorithm: str) -> None:
    path = key_dir / "openssl.pem"
    assert OPENSSL is not None
    command, *options = arguments
    subprocess.run([OPENSSL, command, "-out", str(path), *options], check=True, capture_output=True)
    path.chmod(0o600)
    loaded = signer(path)
    assert loaded.algorithm == algorithm
    public = subprocess.run(
        [OPENSSL, "pkey", "-in", str(path), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    if algorithm == "ed25519-sha256":
        public = public[-32:]  # the SubjectPublicKeyInfo ends with the raw key (RFC 8410 §4)
    assert loaded.public_txt_record().endswith("p=" + base64.b64encode(public).decode())


@pytest.mark.skipif(OPENSSL is None, reason="the openssl command is not installed")
def test_an_rsa_pss_key_made_by_openssl_signs_as_rsa(key_dir: Path) -> None:
    """cryptography loads an RSA-PSS key (RFC 4055) as its RSA numbers: the record is the
    plain RSA SubjectPublicKeyInfo, and rsa-sha256 signatures made with it verify."""
    path = key_dir / "pss.pem"
    assert OPENSSL is not None
    options = ["-pkeyopt", "rsa_keygen_bits:2048", "-out", str(path)]
    subprocess.run(
        [OPENSSL, "genpkey", "-algorithm", "RSA-PSS", *options], check=True, capture_output=True
    )
    path.chmod(0o600)
    loaded = signer(path)
    assert (loaded.algorithm, loaded.key_description) == ("rsa-sha256", "RSA-2048")
    assert verifies(loaded, loaded.sign(MESSAGE, at=AT))


def test_names_are_lower_case_without_a_final_dot(
    key_dir: Path, ed_key: ed25519.Ed25519PrivateKey
) -> None:
    loaded = signer(write(key_dir, pem(ed_key, PKCS8)), selector="Mail.S1", domain="Sender.TEST.")
    assert (loaded.selector, loaded.domain) == ("mail.s1", "sender.test")
    assert loaded.txt_name() == "mail.s1._domainkey.sender.test"


def test_signing_needs_neither_dkimpy_nor_pynacl() -> None:
    """They are test-only dependencies (the reference verifier): with both unimportable,
    core.dkim still imports, loads a key and signs."""
    code = (
        "import base64, pathlib, sys, tempfile\n"
        "sys.modules.update(dkim=None, nacl=None)\n"
        "from core.dkim import DKIMSigner\n"
        "path = pathlib.Path(tempfile.mkdtemp()) / 'ed.key'\n"
        f"path.write_bytes(base64.b64encode({ED25519_SEED!r}))\n"
        "path.chmod(0o600)\n"
        f"signed = DKIMSigner(path, selector='s', domain='d.test').sign({MESSAGE!r})\n"
        "assert signed.startswith(b'DKIM-Signature: v=1; a=ed25519-sha256;')\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPOSITORY, check=True)


# ---- RSA key sizes ---------------------------------------------------------------------------


def test_rsa_under_1024_bits_is_refused(key_dir: Path) -> None:
    path = write(key_dir, pem(small_rsa_key(768), PKCS1))
    message = str(load_error(path))
    assert message.startswith(
        f"the DKIM key in {path} is RSA-768: receivers reject keys under 1024"
    )
    assert "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048" in message


def test_rsa_1024_is_used_with_a_warning(key_dir: Path) -> None:
    path = write(key_dir, pem(rsa.generate_private_key(65537, 1024), PKCS8))
    loaded = signer(path)
    assert loaded.key_description == "RSA-1024"
    assert len(loaded.warnings) == 1
    assert loaded.warnings[0].startswith(f"the DKIM key in {path} is RSA-1024: 2048 bits or more")


def test_rsa_over_4096_is_used_with_a_warning(key_dir: Path) -> None:
    path = write(key_dir, pem(rsa.generate_private_key(65537, 4104), PKCS8))
    loaded = signer(path)
    assert len(loaded.warnings) == 1
    assert "RSA-4104: receivers need only verify keys up to 4096 bits" in loaded.warnings[0]


# ---- files that cannot be used ------------------------------------------------------------------


def test_a_missing_file(key_dir: Path) -> None:
    path = key_dir / "nowhere.pem"
    message = str(load_error(path))
    assert message.startswith(f"the DKIM key file {path} does not exist: check the path")


def test_a_directory(key_dir: Path) -> None:
    assert str(load_error(key_dir)) == (
        f"the DKIM key file {key_dir} is not a file: give the key file"
    )


def test_a_file_that_cannot_be_opened(
    key_dir: Path, ed_key: ed25519.Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(key_dir, pem(ed_key, PKCS8))

    def refuse(self: Path, *args: object, **kwargs: object) -> object:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", refuse)
    message = str(load_error(path))
    assert message.startswith(f"the DKIM key file {path} cannot be read (permission denied)")


@pytest.mark.skipif(WINDOWS, reason="POSIX permissions; on Windows the check is skipped")
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602, 0o620, 0o700 | 0o004])
def test_a_key_file_others_may_read_is_refused(
    key_dir: Path, ed_key: ed25519.Ed25519PrivateKey, mode: int
) -> None:
    path = write(key_dir, pem(ed_key, PKCS8), mode=mode)
    assert str(load_error(path)) == (
        f"the DKIM key file {path} can be read or changed by other users "
        f"(permissions {mode:04o}): run `chmod 600 {path}` so that only its owner can read it"
    )


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700])
def test_owner_only_permissions_are_fine(
    key_dir: Path, ed_key: ed25519.Ed25519PrivateKey, mode: int
) -> None:
    assert signer(write(key_dir, pem(ed_key, PKCS8), mode=mode)).warnings == ()


def not_keys() -> dict[str, tuple[Callable[[], bytes], str]]:
    """Contents that are not a usable private key, and the reason the error gives."""
    rsa_key = rsa.generate_private_key(65537, 1024)
    ed_key = ed25519.Ed25519PrivateKey.from_private_bytes(ED25519_SEED)
    secret = serialization.BestAvailableEncryption(b"passphrase")
    encrypted = "it is encrypted with a passphrase"
    public = "it is a public key; the private key signs, the public key goes in DNS"

    def damaged() -> bytes:
        # One prime changed: the key still parses, but its numbers no longer fit together.
        der = rsa_key.private_bytes(serialization.Encoding.DER, PKCS1, CLEAR)
        prime = rsa_key.private_numbers().p.to_bytes(64, "big")
        at = der.index(prime)
        der = der[: at + 63] + bytes([der[at + 63] ^ 2]) + der[at + 64 :]
        lines = base64.encodebytes(der)
        return b"-----BEGIN RSA PRIVATE KEY-----\n" + lines + b"-----END RSA PRIVATE KEY-----\n"

    other_public = bytes(nacl.signing.SigningKey(bytes(32)).verify_key)
    mismatch = "its Ed25519 public half does not match its private half"

    return {
        "text": (lambda: b"this is my DKIM key, honest\n", ""),
        "empty": (lambda: b"\n \n", "it is empty"),
        "binary": (lambda: bytes(range(256)) * 4, ""),
        "too-big": (lambda: b"A" * (MAX_KEY_FILE + 1), "it is over 64 KB; a key is a few KB"),
        "short-base64": (lambda: base64.b64encode(bytes(31)), ""),
        "bad-pem-base64": (
            lambda: b"-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n",
            "its PEM content is not base64",
        ),
        "pem-garbage": (
            lambda: b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "",
        ),
        "pkcs8-encrypted": (lambda: rsa_key.private_bytes(PEM, PKCS8, secret), encrypted),
        "pkcs1-encrypted": (lambda: rsa_key.private_bytes(PEM, PKCS1, secret), encrypted),
        "openssh": (lambda: pem(ed_key, OPENSSH), "it is an SSH key; DKIM needs a key of its own"),
        "ec-sec1": (
            lambda: ec.generate_private_key(ec.SECP256R1()).private_bytes(PEM, PKCS1, CLEAR),
            "it is an elliptic-curve key; DKIM signs with RSA or Ed25519",
        ),
        "ec-pkcs8": (
            lambda: ec.generate_private_key(ec.SECP256R1()).private_bytes(PEM, PKCS8, CLEAR),
            "it is an elliptic-curve (ECDSA) key; DKIM signs with RSA or Ed25519",
        ),
        "ed448": (
            lambda: ed448.Ed448PrivateKey.generate().private_bytes(PEM, PKCS8, CLEAR),
            "it is an Ed448 key; DKIM signs with RSA or Ed25519",
        ),
        "x25519": (
            lambda: x25519.X25519PrivateKey.generate().private_bytes(PEM, PKCS8, CLEAR),
            "it is an X25519 key; DKIM signs with RSA or Ed25519",
        ),
        "dsa": (
            lambda: dsa.generate_private_key(1024).private_bytes(PEM, PKCS8, CLEAR),
            "it is a DSA key; DKIM signs with RSA or Ed25519",
        ),
        "public-key": (lambda: rsa_key.public_key().public_bytes(PEM, SPKI), public),
        "certificate": (lambda: trustme.CA().cert_pem.bytes(), "it is a certificate"),
        "other-pem": (
            lambda: b"-----BEGIN NOTHING-----\nAAAA\n-----END NOTHING-----\n",
            "it holds no PEM private key",
        ),
        "damaged-rsa": (damaged, "its RSA numbers do not belong together: the file is damaged"),
        "ed25519-mismatch": (
            lambda: base64.b64encode(ED25519_SEED + other_public),
            mismatch,
        ),
        "ed25519-pkcs8-v2-mismatch": (lambda: pkcs8_v2(ED25519_SEED, other_public), mismatch),
        "ed25519-pkcs8-v2-bad-length": (
            lambda: pkcs8_v2(ED25519_SEED, ED25519_PUBLIC, length=0x53),
            "",
        ),
    }


NOT_KEYS = not_keys()


@pytest.mark.parametrize("name", sorted(NOT_KEYS))
def test_a_file_that_is_not_a_usable_key(key_dir: Path, name: str) -> None:
    content, reason = NOT_KEYS[name]
    path = write(key_dir, content())
    message = str(load_error(path))
    assert message.startswith(f"the DKIM key file {path} {NOT_A_KEY}")
    if reason:
        assert message.startswith(f"the DKIM key file {path} {NOT_A_KEY} ({reason}")
    assert f"): {EXPECTED}" in message if reason else f"{NOT_A_KEY}: {EXPECTED}" in message
    assert "make one with `openssl genpkey" in message


# ---- selectors and domains ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "selector", ["", " ", "-s1", "s1-", "s_1", "s 1", "sélecteur", "s1..a", ".s1", "s" * 64]
)
def test_a_selector_that_is_not_a_dns_name(key_dir: Path, selector: str) -> None:
    message = str(load_error(key_dir / "unread.pem", selector=selector))
    assert message.startswith(f"the DKIM selector {selector!r} is not a DNS name")


@pytest.mark.parametrize(
    "domain",
    [
        "",
        "localhost",
        "sender",
        "-sender.test",
        "sen der.test",
        "send_er.test",
        "exämple.test",
        "sender..test",
        "192.0.2.1",
        f"{'a' * 64}.test",
        "@sender.test",
        "news@sender.test",
    ],
)
def test_a_domain_that_is_not_a_domain_name(key_dir: Path, domain: str) -> None:
    message = str(load_error(key_dir / "unread.pem", domain=domain))
    assert message.startswith(f"the DKIM domain {domain!r} is not a domain name")


def test_a_record_name_over_253_characters(key_dir: Path) -> None:
    domain = ".".join(["a" * 60] * 3) + ".test"  # 188 characters: fine on its own
    selector = ".".join(["b" * 30] * 2)
    message = str(load_error(key_dir / "unread.pem", selector=selector, domain=domain))
    assert message.startswith("the DKIM record name ")
    assert message.endswith("is over 253 characters: use a shorter selector")


# ---- DMARC alignment ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "from_domain", ["sender.test", "news.sender.test", "a.b.sender.test", "SENDER.test."]
)
def test_aligned_from_domains(
    key_dir: Path, ed_key: ed25519.Ed25519PrivateKey, from_domain: str
) -> None:
    assert signer(write(key_dir, pem(ed_key, PKCS8))).check_alignment(from_domain) is None


@pytest.mark.parametrize(
    "from_domain", ["other.test", "notsender.test", "test", "mail.sender.test"]
)
def test_unaligned_from_domains(
    key_dir: Path, ed_key: ed25519.Ed25519PrivateKey, from_domain: str
) -> None:
    domain = "news.sender.test" if from_domain == "mail.sender.test" else DOMAIN
    loaded = signer(write(key_dir, pem(ed_key, PKCS8)), domain=domain)
    assert loaded.check_alignment(from_domain) == (
        f"the DKIM domain {domain} is neither the From domain {from_domain} nor a parent of "
        f"it, so DMARC may not count this signature: sign with d={from_domain} or a parent "
        f"domain of it, or send From an address at {domain}"
    )


# ---- the private key stays private -------------------------------------------------------------


def rsa_secrets(key: rsa.RSAPrivateKey, data: bytes) -> list[str]:
    numbers = key.private_numbers()
    lines = [line.decode() for line in data.splitlines() if not line.startswith(b"-----")]
    values = [numbers.d, numbers.p, numbers.q, numbers.dmp1, numbers.dmq1, numbers.iqmp]
    return lines + [str(value) for value in values] + [f"{value:x}" for value in values]


def ed25519_secrets() -> list[str]:
    return [base64.b64encode(ED25519_SEED).decode(), ED25519_SEED.hex(), repr(ED25519_SEED)]


def assert_secret_free(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in text


def test_repr_and_warnings_hold_no_key_material(key_dir: Path) -> None:
    key = rsa.generate_private_key(65537, 1024)
    data = pem(key, PKCS1)
    loaded = signer(write(key_dir, data))
    shown = repr(loaded) + str(loaded) + "".join(loaded.warnings) + repr(loaded._key)
    assert repr(loaded) == (
        f"DKIMSigner(domain='sender.test', selector='s2026', key=RSA-1024, "
        f"key_file={str(key_dir / 'dkim.pem')!r})"
    )
    assert_secret_free(shown, rsa_secrets(key, data))
    ed_signer = signer(write(key_dir, base64.b64encode(ED25519_SEED), "ed.key"))
    assert_secret_free(repr(ed_signer) + str(ed_signer) + repr(ed_signer._key), ed25519_secrets())


def refusals(key_dir: Path) -> Iterator[tuple[DKIMError, list[str]]]:
    """Each way a real key file is refused, with the secrets that must not show."""
    small = small_rsa_key(768)
    for data in (pem(small, PKCS1), pem(small, PKCS8)):
        yield load_error(write(key_dir, data)), rsa_secrets(small, data)
    key = rsa.generate_private_key(65537, 1024)
    data = pem(key, PKCS8)
    yield load_error(write(key_dir, data, mode=0o644)), rsa_secrets(key, data)
    yield load_error(write(key_dir, data), domain="bad domain"), rsa_secrets(key, data)
    damaged = data.replace(data.splitlines()[5], b"A" * 64)
    yield load_error(write(key_dir, damaged)), rsa_secrets(key, data)
    seed = base64.b64encode(ED25519_SEED)
    mismatched = base64.b64encode(ED25519_SEED + bytes(32))
    yield load_error(write(key_dir, mismatched)), [*ed25519_secrets(), mismatched.decode()]
    yield load_error(write(key_dir, seed + b"!")), ed25519_secrets()


def test_errors_and_their_tracebacks_hold_no_key_material(key_dir: Path) -> None:
    seen = 0
    for error, secrets in refusals(key_dir):
        seen += 1
        assert error.__cause__ is None
        assert error.__context__ is None or error.__suppress_context__
        assert_secret_free("".join(traceback.format_exception(error)), secrets)
    assert seen == 7


# ---- the signature's form ------------------------------------------------------------------------


@pytest.fixture(params=["rsa", "ed25519"])
def any_signer(request: pytest.FixtureRequest, key_dir: Path) -> DKIMSigner:
    if request.param == "rsa":
        return signer(write(key_dir, pem(request.getfixturevalue("rsa2048"), PKCS8)))
    return signer(write(key_dir, base64.b64encode(ED25519_SEED)))


def test_the_signature_is_prepended_and_the_message_kept(any_signer: DKIMSigner) -> None:
    signed = any_signer.sign(MESSAGE, at=AT)
    assert signed.startswith(b"DKIM-Signature: v=1; a=")
    signature_end = re.search(rb"\r\n(?![ \t])", signed)
    assert signature_end is not None
    assert signed[signature_end.end() :] == MESSAGE
    assert verifies(any_signer, signed)


def test_the_tags(any_signer: DKIMSigner) -> None:
    found = tags(any_signer.sign(MESSAGE, at=AT))
    body = MESSAGE.partition(b"\r\n\r\n")[2]
    assert found.pop("b")
    assert found == {
        "v": "1",
        "a": any_signer.algorithm,
        "c": "relaxed/relaxed",
        "d": DOMAIN,
        "s": SELECTOR,
        "t": str(AT),
        "h": "from:from:to:to:subject:subject:date:date:message-id:message-id:"
        "mime-version:mime-version:content-type:content-type",
        "bh": base64.b64encode(hashlib.sha256(body).digest()).decode(),
    }


def test_every_listed_header_present_is_signed_once_more_than_it_occurs(
    any_signer: DKIMSigner,
) -> None:
    head = "".join(f"{name.title()}: value of {name}\r\n" for name in reversed(SIGNED_HEADERS))
    message = (head + "To: second@example.test\r\nReceived: from x\r\n\r\nbody\r\n").encode()
    names = tags(any_signer.sign(message, at=AT))["h"].split(":")
    expected = [name for name in SIGNED_HEADERS for _ in range(3 if name == "to" else 2)]
    assert names == expected
    assert verifies(any_signer, any_signer.sign(message))


def test_lines_are_crlf_and_at_most_78_characters(any_signer: DKIMSigner) -> None:
    signed = any_signer.sign(MESSAGE, at=AT)
    head = signed[: signed.index(b"From:")]
    assert head.endswith(b"\r\n")
    lines = head.removesuffix(b"\r\n").split(b"\r\n")
    assert b"\n" not in b"".join(lines)
    assert max(len(line) for line in lines) <= 78
    assert all(line.startswith(b" ") for line in lines[1:])


def test_same_message_same_second_same_bytes(any_signer: DKIMSigner) -> None:
    assert any_signer.sign(MESSAGE, at=AT) == any_signer.sign(MESSAGE, at=AT + 0.9)
    later = any_signer.sign(MESSAGE, at=AT + 1)
    assert tags(later)["t"] == str(AT + 1)
    assert later != any_signer.sign(MESSAGE, at=AT)


def test_a_message_without_a_final_crlf_gets_one(any_signer: DKIMSigner) -> None:
    signed = any_signer.sign(MESSAGE.removesuffix(b"\r\n") + b"  ")
    assert signed.endswith(b"The newsletter.  \r\n")
    assert verifies(any_signer, signed)


def test_a_message_without_a_body(any_signer: DKIMSigner) -> None:
    head_only = MESSAGE.partition(b"\r\n\r\n")[0] + b"\r\n"
    signed = any_signer.sign(head_only)
    assert tags(signed)["bh"] == base64.b64encode(hashlib.sha256(b"").digest()).decode()
    assert verifies(any_signer, signed)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (MESSAGE.replace(b"\r\n", b"\n"), "a line end that is not CRLF"),
        (MESSAGE.replace(b"newsletter.\r\n", b"newsletter.\n"), "a line end that is not CRLF"),
        (MESSAGE + b"a lone CR\r", "a line end that is not CRLF"),
        (MESSAGE.replace(b"From: Example Club <news@sender.test>\r\n", b""), "no From header"),
        (b"From: <a@sender.test>\r\n" + MESSAGE, "has 2 From headers: it must have one"),
        (b"Not a header\r\n" + MESSAGE, "malformed header line: b'Not a header'"),
        (b": no name\r\n" + MESSAGE, "malformed header line"),
        (b" folded first\r\n" + MESSAGE, "starts with a continuation line"),
    ],
    ids=["lf", "one-lf", "lone-cr", "no-from", "two-froms", "no-colon", "no-name", "fold-first"],
)
def test_messages_that_cannot_be_signed(
    any_signer: DKIMSigner, message: bytes, reason: str
) -> None:
    with pytest.raises(DKIMError, match=re.escape(reason)):
        any_signer.sign(message)


def test_the_shared_newsletter_signs_and_verifies(any_signer: DKIMSigner) -> None:
    raw = (SHARED_MESSAGES / "newsletter-with-attachment.eml").read_bytes()
    message = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert verifies(any_signer, any_signer.sign(message))


# ---- canonicalisation: held equal to dkimpy's -------------------------------------------------

TEXT = st.text(alphabet=["a", "b", "é", " ", "\t", ":", "="], max_size=30)
LINES = st.lists(TEXT, max_size=8)


def dkimpy_body(body: bytes) -> bytes:
    result: bytes = Relaxed.canonicalize_body(body)
    return result


@given(LINES, st.booleans())
def test_relaxed_body_matches_dkimpy(lines: list[str], final_crlf: bool) -> None:
    body = "\r\n".join(lines).encode()
    if final_crlf and body:
        body += b"\r\n"
    as_sent = body + b"\r\n" if body and not body.endswith(b"\r\n") else body
    assert relaxed_body(body) == dkimpy_body(as_sent)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", b""),
        (b"\r\n\r\n", b""),
        (b" \t \r\n", b""),
        (b"a  b\t\tc \t\r\n\r\n\r\n", b"a b c\r\n"),
        (b" lead\r\n", b" lead\r\n"),
        (b"no end  ", b"no end\r\n"),
    ],
)
def test_relaxed_body_examples(body: bytes, expected: bytes) -> None:
    assert relaxed_body(body) == expected


@given(st.sampled_from(["Subject", "subject ", "X-Thing\t", "TO"]), LINES)
def test_relaxed_header_matches_dkimpy(name: str, lines: list[str]) -> None:
    value = "\r\n ".join(lines).encode()  # folded: every continuation starts with WSP
    ((dk_name, dk_value),) = Relaxed.canonicalize_headers([(name.encode(), value)])
    assert relaxed_header(name.encode(), value) == dk_name + b":" + dk_value


@given(
    subject=TEXT,
    extra=st.lists(
        st.tuples(st.sampled_from(["To", "Reply-To", "X-A", "Subject"]), TEXT), max_size=4
    ),
    lines=LINES,
)
def test_any_message_verifies(
    ed_signer: DKIMSigner, subject: str, extra: list[tuple[str, str]], lines: list[str]
) -> None:
    """Ed25519 (fast) over many shapes of header and body, verified by dkimpy."""
    head = f"From: <a@sender.test>\r\nSubject: {subject}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in extra
    )
    message = (head + "\r\n" + "\r\n".join(lines)).encode()
    assert verifies(ed_signer, ed_signer.sign(message))
