"""Per-message DKIM signing cost: ``core.dkim`` (``cryptography``, OpenSSL) beside dkimpy.

Signs the shared ~6 KB newsletter (/work/shared/data/messages, CRLF line ends, the headers a
rendered campaign message has), personalised per message so that no two bodies are alike,
with RSA-2048 and Ed25519, and prints µs/message and messages/s for ``core.dkim`` and for
dkimpy's ``dkim.sign`` (pure-Python RSA, PyNaCl's Ed25519; it parses the key on every call,
as a caller of ``dkim.sign`` would), then how many times faster ``core.dkim`` is. One core,
one thread.

    .venv/bin/python bench/dkim_sign.py [--messages N] [--dkimpy-rsa-messages N]
                                        [--dkimpy-ed25519-messages N]

Not a test: nothing here fails, except a signature that dkimpy does not verify. dkimpy and
PyNaCl are test dependencies (``pip install -e .[test]``).
"""

from __future__ import annotations

import argparse
import base64
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import dkim
from cryptography.hazmat.backends.openssl import backend
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.dkim import DKIMSigner

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "messages"
NEWSLETTER = SHARED / "newsletter-with-attachment.eml"
DOMAIN = "sender.test"
NAMES = ["Ana", "Bjørn", "Chloé", "Dmitri", "Eve", "François", "Grace", "Hiro"]
RELAXED = (b"relaxed", b"relaxed")
CORE = "core.dkim (cryptography)"
DKIMPY = "dkimpy dkim.sign"


@dataclass(frozen=True, slots=True)
class Timing:
    key: str
    signer: str
    messages: int
    seconds: float

    @property
    def per_message(self) -> float:
        return self.seconds / self.messages


def messages(count: int) -> list[bytes]:
    """``count`` rendered messages: CRLF, per-recipient headers, a personalised body."""
    template = NEWSLETTER.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    rendered = []
    for number in range(count):
        name = f"{NAMES[number % len(NAMES)]} {number}".encode()
        head = (
            f"Message-ID: <{number:032x}@sender.test>\r\n"
            "Date: Wed, 25 Nov 2026 09:00:00 +0000\r\n"
            f"To: <reader{number}@example.test>\r\n"
            f"List-Unsubscribe: <https://sender.test/u/{number:032x}>\r\n"
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        ).encode()
        rendered.append(head + template.replace(b"{{first_name}}", name))
    return rendered


def write_keys(directory: Path) -> tuple[Path, Path]:
    """An RSA-2048 PKCS#8 PEM file and an Ed25519 seed in dknewkey's base64 form."""
    rsa_key = rsa.generate_private_key(65537, 2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    ed_seed = base64.b64encode(ed25519.Ed25519PrivateKey.generate().private_bytes_raw())
    paths = directory / "rsa.pem", directory / "ed25519.key"
    for path, data in zip(paths, (rsa_key, ed_seed), strict=True):
        path.write_bytes(data)
        path.chmod(0o600)
    return paths


def measure(key: str, signer: str, sign: Callable[[bytes], object], batch: list[bytes]) -> Timing:
    sign(batch[0])  # warm
    started = time.perf_counter()
    for message in batch:
        sign(message)
    timing = Timing(key, signer, len(batch), time.perf_counter() - started)
    print(
        f"{key:<9} {signer:<25} {timing.per_message * 1e6:>9,.0f} µs/message "
        f"{1 / timing.per_message:>9,.0f} messages/s   ({timing.messages:,} messages)",
        flush=True,
    )
    return timing


def check(signer: DKIMSigner, message: bytes) -> None:
    record = signer.public_txt_record().encode()
    signed = signer.sign(message)
    if not dkim.DKIM(signed).verify(dnsfunc=lambda name, timeout=5: record):
        raise SystemExit(f"{signer!r}: dkimpy does not verify the signature")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000, help="core.dkim, each key")
    parser.add_argument("--dkimpy-rsa-messages", type=int, default=300)
    parser.add_argument("--dkimpy-ed25519-messages", type=int, default=2000)
    args = parser.parse_args()
    counts = (args.messages, args.dkimpy_rsa_messages, args.dkimpy_ed25519_messages)
    batch = messages(max(counts))
    size = sum(map(len, batch)) / len(batch)
    print(
        f"Python {platform.python_version()} on {platform.machine()}, "
        f"cryptography {version('cryptography')} ({backend.openssl_version_text()}), "
        f"dkimpy {version('dkimpy')}, PyNaCl {version('PyNaCl')}"
    )
    print(f"messages: {size:,.0f} bytes on average, each body different\n")
    with tempfile.TemporaryDirectory() as directory:
        rsa_path, ed_path = write_keys(Path(directory))
        rsa_signer = DKIMSigner(rsa_path, selector="rsa", domain=DOMAIN)
        ed_signer = DKIMSigner(ed_path, selector="ed", domain=DOMAIN)
        for signer in (rsa_signer, ed_signer):
            check(signer, batch[0])
        rsa_pem, ed_seed = rsa_path.read_bytes(), ed_path.read_bytes()

        def dkimpy_rsa(message: bytes) -> object:
            return dkim.sign(message, b"rsa", DOMAIN.encode(), rsa_pem, canonicalize=RELAXED)

        def dkimpy_ed(message: bytes) -> object:
            return dkim.sign(
                message,
                b"ed",
                DOMAIN.encode(),
                ed_seed,
                signature_algorithm=b"ed25519-sha256",
                canonicalize=RELAXED,
            )

        pairs = [
            (
                measure("RSA-2048", CORE, rsa_signer.sign, batch[: args.messages]),
                measure("RSA-2048", DKIMPY, dkimpy_rsa, batch[: args.dkimpy_rsa_messages]),
            ),
            (
                measure("Ed25519", CORE, ed_signer.sign, batch[: args.messages]),
                measure("Ed25519", DKIMPY, dkimpy_ed, batch[: args.dkimpy_ed25519_messages]),
            ),
        ]
    print()
    for core, reference in pairs:
        ratio = reference.per_message / core.per_message
        print(f"{core.key:<9} core.dkim is {ratio:,.1f}x as fast as dkim.sign")


if __name__ == "__main__":
    main()
