"""DKIM signatures from ``core.dkim`` verified by dkimpy, the key found as a receiver finds
it: a TXT query over UDP to the lab DNS server on 127.0.0.1, which serves the record that
``public_txt_record()`` gives (split into 255-octet strings, as real zones hold it).

dkimpy's verifier is synchronous, so it runs in a worker thread while the lab server
answers on the test's event loop. Keys: an RSA-2048 PKCS#8 PEM written by ``cryptography``
and an Ed25519 seed in dknewkey's base64 form; no openssl needed. core.dkim signs with
``cryptography`` (OpenSSL); dkimpy verifies with its own pure-Python RSA and PyNaCl.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from pathlib import Path

import dkim
import dns.exception
import dns.resolver
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from core.dkim import DKIMSigner
from core.lab.dns import LabDNS, LabZone

SHARED_MESSAGES = Path(__file__).resolve().parents[3] / "shared" / "data" / "messages"
DOMAIN = "sender.test"
PASS = "pass"
FAIL = "fail"

MESSAGE = (
    b"From: Example Club <news@sender.test>\r\n"
    b"To: <reader@example.test>\r\n"
    b"Subject: The November newsletter\r\n"
    b"Date: Wed, 25 Nov 2026 09:00:00 +0000\r\n"
    b"Message-ID: <0123456789abcdef@sender.test>\r\n"
    b"List-Unsubscribe: <https://sender.test/u/0123456789abcdef>,\r\n"
    b" <mailto:unsubscribe@sender.test?subject=0123456789abcdef>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    b"X-Campaign: november\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Hello reader,\r\n\r\nThe newsletter: caf\xc3\xa9 and  more.\r\n"
)


# ---- keys, the lab, the verifier ---------------------------------------------------------------


def key_file(directory: Path, data: bytes) -> Path:
    path = directory / "dkim.key"
    path.write_bytes(data)
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def rsa_signer(tmp_path_factory: pytest.TempPathFactory) -> DKIMSigner:
    key = rsa.generate_private_key(65537, 2048)
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return DKIMSigner(key_file(tmp_path_factory.mktemp("rsa"), data), selector="rsa", domain=DOMAIN)


@pytest.fixture(scope="module")
def ed_signer(tmp_path_factory: pytest.TempPathFactory) -> DKIMSigner:
    seed = base64.b64encode(bytes(range(100, 132)))
    return DKIMSigner(key_file(tmp_path_factory.mktemp("ed"), seed), selector="ed", domain=DOMAIN)


@pytest.fixture(params=["rsa", "ed25519"])
def signer(request: pytest.FixtureRequest) -> DKIMSigner:
    name = "rsa_signer" if request.param == "rsa" else "ed_signer"
    found: DKIMSigner = request.getfixturevalue(name)
    return found


@pytest.fixture
async def lab(signer: DKIMSigner) -> AsyncIterator[LabDNS]:
    """The lab DNS server with ``signer``'s key published."""
    zone = LabZone().add_txt(signer.txt_name(), signer.public_txt_record())
    async with LabDNS(zone) as server:
        yield server


async def verdict(lab: LabDNS, message: bytes) -> str:
    """dkimpy's verdict on the first DKIM-Signature: ``pass``, ``fail`` (the signature
    does not match), or the reason dkimpy gives for refusing the message."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [lab.host]
    resolver.port = lab.port
    resolver.lifetime = 3.0

    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        try:
            answer = resolver.resolve(name.decode("ascii"), "TXT")
        except dns.exception.DNSException:
            return None
        return b"".join(b"".join(record.strings) for record in answer)

    def verify() -> str:
        try:
            return PASS if dkim.DKIM(message).verify(dnsfunc=lookup) else FAIL
        except dkim.DKIMException as error:
            return str(error)

    return await asyncio.to_thread(verify)


def sign_and_edit(signer: DKIMSigner, old: bytes, new: bytes, message: bytes = MESSAGE) -> bytes:
    """``message`` signed, then changed in transit: ``old`` (which must be there) -> ``new``."""
    signed = signer.sign(message)
    assert signed.count(old) == 1
    return signed.replace(old, new)


# ---- signatures that verify ---------------------------------------------------------------------


async def test_a_signed_message_verifies_with_the_key_from_dns(
    lab: LabDNS, signer: DKIMSigner
) -> None:
    assert await verdict(lab, signer.sign(MESSAGE)) == PASS
    assert lab.queries(signer.txt_name(), "TXT") == 1
    assert lab.stats.udp >= 1


async def test_the_shared_newsletter(lab: LabDNS, signer: DKIMSigner) -> None:
    raw = (SHARED_MESSAGES / "newsletter-with-attachment.eml").read_bytes()
    message = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    message = message.replace(b"{{first_name}}", "Zoë".encode())
    assert await verdict(lab, signer.sign(message)) == PASS


async def test_list_unsubscribe_headers_are_signed(lab: LabDNS, signer: DKIMSigner) -> None:
    signed = signer.sign(MESSAGE)
    h = re.search(rb"h=([a-z:\-\s]+);", signed)
    assert h is not None
    names = re.sub(rb"\s", b"", h.group(1)).split(b":")
    assert names.count(b"list-unsubscribe") == 2
    assert names.count(b"list-unsubscribe-post") == 2
    assert await verdict(lab, signed) == PASS


async def test_an_rfc2047_subject(lab: LabDNS, signer: DKIMSigner) -> None:
    subject = (
        b"Subject: =?utf-8?b?Q2Fmw6kgZGUgbGEgZ2FyZSDigJQgbm92ZW1icmUg8J+OiQ==?=\r\n"
        b" =?utf-8?q?_et_d=C3=A9cembre?=\r\n"
    )
    message = MESSAGE.replace(b"Subject: The November newsletter\r\n", subject)
    assert await verdict(lab, signer.sign(message)) == PASS


async def test_a_raw_utf8_subject(lab: LabDNS, signer: DKIMSigner) -> None:
    """RFC 6532 headers (sent only to SMTPUTF8 servers) sign as their bytes."""
    message = MESSAGE.replace(b"The November", "Café — the November".encode())
    assert await verdict(lab, signer.sign(message)) == PASS


async def test_headers_not_signed_may_change(lab: LabDNS, signer: DKIMSigner) -> None:
    changed = sign_and_edit(signer, b"X-Campaign: november\r\n", b"X-Campaign: december\r\n")
    received = b"Received: from client.test by mx.example.test; Wed, 25 Nov 2026\r\n"
    assert await verdict(lab, received + changed) == PASS


async def test_refolding_and_spaces_in_transit_are_tolerated(
    lab: LabDNS, signer: DKIMSigner
) -> None:
    """What relaxed/relaxed is for: a relay that refolds headers or pads line ends."""
    refolded = sign_and_edit(
        signer,
        b"Subject: The November newsletter\r\n",
        b"Subject:  The November\r\n\t newsletter \r\n",
    )
    padded = refolded.replace(b"Hello reader,\r\n", b"Hello  reader, \t\r\n")
    assert await verdict(lab, padded) == PASS


# ---- signatures that must not verify ------------------------------------------------------------


async def test_a_changed_body_fails(lab: LabDNS, signer: DKIMSigner) -> None:
    tampered = sign_and_edit(signer, b"The newsletter:", b"The newsletter!")
    assert (await verdict(lab, tampered)).startswith("body hash mismatch")


async def test_a_body_line_added_at_the_end_fails(lab: LabDNS, signer: DKIMSigner) -> None:
    tampered = signer.sign(MESSAGE) + b"Click here: https://evil.test/\r\n"
    assert (await verdict(lab, tampered)).startswith("body hash mismatch")


async def test_a_changed_subject_fails(lab: LabDNS, signer: DKIMSigner) -> None:
    tampered = sign_and_edit(signer, b"The November newsletter", b"The December newsletter")
    assert await verdict(lab, tampered) == FAIL


async def test_a_changed_unsubscribe_link_fails(lab: LabDNS, signer: DKIMSigner) -> None:
    tampered = sign_and_edit(signer, b"https://sender.test/u/", b"https://evil.test/u/")
    assert await verdict(lab, tampered) == FAIL


def insert_both_ways(signed: bytes, added: bytes) -> list[bytes]:
    """``added`` put right after the signature, and as the last header."""
    after_signature = re.search(rb"\r\n(?![ \t])", signed)
    assert after_signature is not None
    top, bottom = after_signature.end(), signed.index(b"\r\n\r\n") + 2
    return [signed[:at] + added + signed[at:] for at in (top, bottom)]


@pytest.mark.parametrize(
    "added",
    [
        b"Subject: A second subject\r\n",
        b"From: <boss@sender.test>\r\n",
        b"List-Unsubscribe: <https://evil.test/u>\r\n",
    ],
    ids=["subject", "from", "list-unsubscribe"],
)
async def test_a_second_signed_header_added_in_transit_fails(
    lab: LabDNS, signer: DKIMSigner, added: bytes
) -> None:
    """Oversigning: another instance of a signed header breaks the signature, wherever
    it is put."""
    for tampered in insert_both_ways(signer.sign(MESSAGE), added):
        assert await verdict(lab, tampered) == FAIL


async def test_a_listed_header_absent_when_signed_is_not_covered(
    lab: LabDNS, signer: DKIMSigner
) -> None:
    """Only present headers are signed: a Reply-To added to a message that had none
    still verifies (the decision documented in core.dkim)."""
    for tampered in insert_both_ways(signer.sign(MESSAGE), b"Reply-To: <x@evil.test>\r\n"):
        assert await verdict(lab, tampered) == PASS


async def test_a_signature_checked_against_another_key_fails(
    lab: LabDNS, signer: DKIMSigner, tmp_path: Path
) -> None:
    """The verdict depends on the record the DNS server serves."""
    other = rsa.generate_private_key(65537, 2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    impostor = DKIMSigner(key_file(tmp_path, other), selector=signer.selector, domain=DOMAIN)
    lab.zone.remove(signer.txt_name(), "TXT").add_txt(
        signer.txt_name(), impostor.public_txt_record()
    )
    assert await verdict(lab, signer.sign(MESSAGE)) == FAIL
    assert await verdict(lab, impostor.sign(MESSAGE)) == PASS


async def test_no_published_key_fails(lab: LabDNS, signer: DKIMSigner) -> None:
    lab.zone.remove(signer.txt_name(), "TXT")
    assert await verdict(lab, signer.sign(MESSAGE)) == FAIL
    assert lab.queries(signer.txt_name(), "TXT") == 1
