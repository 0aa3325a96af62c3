"""Per-message DKIM signing cost (``core.dkim``) for RSA-2048 and Ed25519.

Signs the shared ~6 KB newsletter (/work/shared/data/messages, CRLF line ends, the headers a
rendered campaign message has), personalised per message so that no two bodies are alike, and
prints µs/message and messages/s for each key type; then the same with dkimpy's
``dkim.sign`` (which parses the key on every call) for comparison. One core, one thread.

    .venv/bin/python bench/dkim_sign.py [--messages N] [--rsa-messages N]

Not a test: nothing here fails, except a signature that dkimpy does not verify.
"""

from __future__ import annotations

import argparse
import base64
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import dkim
import nacl.signing
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.dkim import DKIMSigner

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "messages"
NEWSLETTER = SHARED / "newsletter-with-attachment.eml"
DOMAIN = "sender.test"
NAMES = ["Ana", "Bjørn", "Chloé", "Dmitri", "Eve", "François", "Grace", "Hiro"]


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
    rsa_key = rsa.generate_private_key(65537, 2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    ed_seed = base64.b64encode(bytes(nacl.signing.SigningKey.generate()))
    paths = directory / "rsa.pem", directory / "ed25519.key"
    for path, data in zip(paths, (rsa_key, ed_seed), strict=True):
        path.write_bytes(data)
        path.chmod(0o600)
    return paths


def measure(label: str, sign: Callable[[bytes], bytes], batch: list[bytes]) -> None:
    sign(batch[0])  # warm
    started = time.perf_counter()
    for message in batch:
        sign(message)
    seconds = time.perf_counter() - started
    per_message = seconds / len(batch)
    print(
        f"{label:<34} {per_message * 1e6:>9,.0f} µs/message {1 / per_message:>9,.0f} messages/s"
        f"   ({len(batch):,} messages)"
    )


def check(signer: DKIMSigner, message: bytes) -> None:
    record = signer.public_txt_record().encode()
    signed = signer.sign(message)
    if not dkim.DKIM(signed).verify(dnsfunc=lambda name, timeout=5: record):
        raise SystemExit(f"{signer!r}: dkimpy does not verify the signature")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000, help="Ed25519 messages")
    parser.add_argument("--rsa-messages", type=int, default=300, help="RSA messages")
    args = parser.parse_args()
    batch = messages(max(args.messages, args.rsa_messages))
    size = sum(map(len, batch)) / len(batch)
    print(f"Python {platform.python_version()} on {platform.machine()}, dkimpy {dkim_version()}")
    print(f"messages: {size:,.0f} bytes on average, each body different\n")
    with tempfile.TemporaryDirectory() as directory:
        rsa_path, ed_path = write_keys(Path(directory))
        rsa_signer = DKIMSigner(rsa_path, selector="rsa", domain=DOMAIN)
        ed_signer = DKIMSigner(ed_path, selector="ed", domain=DOMAIN)
        for signer in (rsa_signer, ed_signer):
            check(signer, batch[0])
        measure("core.dkim RSA-2048", rsa_signer.sign, batch[: args.rsa_messages])
        measure("core.dkim Ed25519", ed_signer.sign, batch[: args.messages])
        rsa_pem, ed_seed = rsa_path.read_bytes(), ed_path.read_bytes()
        relaxed = (b"relaxed", b"relaxed")

        def dkimpy_rsa(message: bytes) -> bytes:
            return bytes(dkim.sign(message, b"rsa", DOMAIN.encode(), rsa_pem, canonicalize=relaxed))

        def dkimpy_ed(message: bytes) -> bytes:
            algorithm = b"ed25519-sha256"
            return bytes(
                dkim.sign(
                    message,
                    b"ed",
                    DOMAIN.encode(),
                    ed_seed,
                    signature_algorithm=algorithm,
                    canonicalize=relaxed,
                )
            )

        measure("dkimpy dkim.sign RSA-2048", dkimpy_rsa, batch[: args.rsa_messages])
        measure("dkimpy dkim.sign Ed25519", dkimpy_ed, batch[: min(args.messages, 2000)])


def dkim_version() -> str:
    from importlib.metadata import version

    return version("dkimpy")


if __name__ == "__main__":
    main()
