"""DKIM: is the configured selector published, and is its public key the configured
private key's?

The key file is loaded and checked by ``core.dkim.DKIMSigner`` (the one that signs), and
its public half compared with the ``p=`` of ``<selector>._domainkey.<domain>``. A
mismatch is the classic mistake after a key rotation: every signature then fails.
"""

from __future__ import annotations

import asyncio

from core.dkim import DKIMError, DKIMSigner
from core.preflight.facts import Facts
from core.preflight.report import CheckResult, Status

KEY = "dkim"
TITLE = "DKIM key published"


def tags(record: str) -> dict[str, str]:
    """``v=DKIM1; k=rsa; p=...`` -> tags; whitespace inside values removed (RFC 6376
    §3.2: folding whitespace is allowed anywhere in a tag list)."""
    found: dict[str, str] = {}
    for part in record.split(";"):
        name, equals, value = part.partition("=")
        if equals:
            found[name.strip().lower()] = "".join(value.split())
    return found


async def check(facts: Facts) -> list[CheckResult]:
    settings = facts.campaign.dkim
    if settings is None:
        return [CheckResult(KEY, TITLE, Status.WARN,
                            "Messages are not DKIM-signed: Gmail and Yahoo require DKIM (or at "
                            "least SPF) and DMARC for bulk senders, and unsigned mail is "
                            "trusted less.",
                            "Set a DKIM key, selector and domain (Settings, or --dkim-key, "
                            "--dkim-selector) and publish its TXT record.")]
    try:
        signer = await asyncio.to_thread(
            DKIMSigner, settings.key_file, selector=settings.selector, domain=settings.domain
        )
    except (DKIMError, OSError) as error:
        return [CheckResult(KEY, TITLE, Status.FAIL, f"The DKIM key cannot be used: {error}",
                            "Fix the key file (or choose another) in the settings.")]
    name = signer.txt_name()
    expected = tags(signer.public_txt_record())["p"]
    answer = await facts.lookups.txt(name)
    publish = f"Publish this TXT record at {name}: {signer.public_txt_record()}"
    if answer.failed:
        return [CheckResult(KEY, TITLE, Status.UNKNOWN,
                            f"The DKIM record at {name} could not be read: {answer.problem}.",
                            "Try again; if it persists, check the domain's DNS servers.")]
    records = [tags(text) for text in answer.records if "p=" in text.replace(" ", "")]
    if not records:
        return [CheckResult(KEY, TITLE, Status.FAIL,
                            f"No DKIM key is published at {name}: receivers cannot verify "
                            "the signatures, which then count as failed.", publish + ".")]
    if any(record.get("p") == expected for record in records):
        result = f"{name} publishes the public key of {signer.key_file.name}."
        alignment = signer.check_alignment(facts.campaign.from_domain)
        if alignment is not None:
            return [CheckResult(KEY, TITLE, Status.WARN, f"{result} But {alignment}.",
                                "Sign with the From domain (or its parent).")]
        return [CheckResult(KEY, TITLE, Status.PASS, result)]
    if any(not record.get("p") for record in records):
        return [CheckResult(KEY, TITLE, Status.FAIL,
                            f"The key at {name} is revoked (empty p=).", publish + ".")]
    return [CheckResult(KEY, TITLE, Status.FAIL,
                        f"The key published at {name} is not the public key of "
                        f"{signer.key_file}: every signature would fail.",
                        f"Replace the record: {signer.public_txt_record()} (or choose the key "
                        "file that matches the record).")]
