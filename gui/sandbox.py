"""The sandbox demo: a sample campaign, and the rehearsal lab it is sent to.

Owns three things and nothing else: where the sample campaign's files are
(``resources/sandbox/``), how they become a campaign file, and how the engine is pointed
at an in-process lab (``core.lab.world.sandbox_world``) with timeouts short enough that
the tarpit fails over within seconds. It never imports Qt, so it is tested like core.

Safety: a campaign made here carries ``settings["sandbox"] = True``; the window sends
such campaigns only to the lab's nameserver and port on 127.0.0.x, whatever the
settings say. Only a campaign file made elsewhere (``mxmailer send --state``), with real
delivery chosen and acknowledged in the settings, is sent for real
(:mod:`gui.settings_model`), so the sandbox cannot be left by accident.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from core.connection import Timeouts
from core.dns import parse_nameserver
from core.engine import EngineConfig
from core.lab.world import LabWorld, sandbox_world
from core.outgoing import SANDBOX, OutgoingMessages
from core.recipients import ImportSummary, read_header, read_recipients
from core.retry import RetryPolicy
from core.store import CampaignStore, NewRecipient
from gui.campaign_build import build_campaign
from gui.resources_path import resources_dir

#: The text of the banner shown while a sandbox campaign is open.
BANNER: Final = "Sandbox: nothing leaves this computer — mail goes to a lab on 127.0.0.x"
#: The banner's text while a real campaign is open ({sender}: the campaign's sender).
REAL_BANNER: Final = (
    "Real delivery: mail goes to recipients' servers — this campaign sends from {sender} "
    "to real mailboxes, after you confirm the count"
)
#: The campaign setting that marks a campaign file as made for the lab.
SANDBOX_SETTING: Final = SANDBOX
SENDER: Final = "demo@sender.test"
HELO: Final = "sender.test"
#: How long grey.test greylists in the demo: long enough to watch the countdown.
DEMO_GREYLIST_SECONDS: Final = 15

#: The sample campaign, shipped in resources/ (inside the bundle when frozen).
SAMPLE_DIR: Final = resources_dir() / "sandbox"
SAMPLE_RECIPIENTS: Final = SAMPLE_DIR / "recipients.csv"
SAMPLE_MESSAGE: Final = SAMPLE_DIR / "message.eml"

#: Per-phase waits against the lab. The lab answers in microseconds, so two seconds is
#: generous, and it makes the tarpit (an MX that never greets) fail over quickly.
LAB_TIMEOUTS: Final = Timeouts(
    connect=2.0,
    greeting=2.0,
    command=3.0,
    data=3.0,
    body_block=3.0,
    end_of_data=5.0,
    tls_handshake=3.0,
    quit=1.0,
    session=120.0,
)


class SandboxError(Exception):
    """The sample campaign could not be made; the message says why."""


@dataclass(frozen=True, slots=True)
class SampleCampaign:
    """A campaign file made from the sample, and what its import found."""

    path: Path
    summary: ImportSummary = field(default_factory=ImportSummary)


def is_sandbox(store: CampaignStore) -> bool:
    """Was this campaign made for the lab (and so may the window send it)?"""
    return store.settings.get(SANDBOX_SETTING) is True


def create_sample_campaign(
    folder: Path,
    *,
    recipients: Path = SAMPLE_RECIPIENTS,
    message: Path = SAMPLE_MESSAGE,
    now: float | None = None,
) -> SampleCampaign:
    """Import the sample into a new campaign file in ``folder`` and return where it is.

    The file is built under a temporary name and renamed once complete (as ``mxmailer
    send`` does), so an interrupted import never looks like a campaign to open.
    """
    raw = message.read_bytes()
    unknown = sample_message_gaps(read_header(recipients), raw)
    if unknown:
        raise SandboxError(
            f"the sample message uses fields the sample list lacks: {', '.join(unknown)}"
        )
    summary = ImportSummary()
    return build_sandbox_campaign(
        folder, lambda: read_recipients(recipients, summary), summary, raw, now=now
    )


def sample_message_gaps(columns: Iterable[str], raw: bytes | None = None) -> list[str]:
    """The fields the sample message uses that ``columns`` lack (they merge as empty)."""
    message = SAMPLE_MESSAGE.read_bytes() if raw is None else raw
    settings: dict[str, object] = {"helo": HELO, SANDBOX_SETTING: True}
    return OutgoingMessages(message, settings).template.unknown_fields(columns)


def build_sandbox_campaign(
    folder: Path,
    rows: Callable[[], Iterable[NewRecipient]],
    summary: ImportSummary,
    message: bytes,
    *,
    stem: str = "sandbox",
    now: float | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> SampleCampaign:
    """A new sandbox campaign file in ``folder`` holding ``rows()`` (which fill
    ``summary``): marked for the lab, from the demo sender (see :func:`build_campaign`)."""
    settings: dict[str, object] = {"helo": HELO, SANDBOX_SETTING: True}
    path = build_campaign(
        folder,
        rows,
        message,
        sender=SENDER,
        settings=settings,
        stem=stem,
        now=now,
        cancelled=cancelled,
    )
    return SampleCampaign(path, summary)


def lab_retry_policy(greylist_seconds: float) -> RetryPolicy:
    """Retries sized for the lab: the greylisting hint is honoured even when it is
    short (the real minimum of 60 s would make the demo wait for nothing), backoff
    starts at a few seconds, and nothing waits longer than ten minutes."""
    return RetryPolicy(
        greylist_first=greylist_seconds + 1.0,
        greylist_jitter=1.0,
        hint_min=1.0,
        hint_max=max(60.0, greylist_seconds * 2),
        backoff_first=5.0,
        backoff_max=30.0,
        lifetime=600.0,
    )


class SandboxLab:
    """The rehearsal lab for one open sandbox campaign: started on first use, stopped
    when the campaign closes. The engine config it gives can only reach the lab."""

    def __init__(self, *, greylist_seconds: int = DEMO_GREYLIST_SECONDS) -> None:
        self.greylist_seconds = greylist_seconds
        self._world: LabWorld | None = None

    @property
    def running(self) -> bool:
        return self._world is not None

    @property
    def world(self) -> LabWorld:
        if self._world is None:
            raise RuntimeError("the sandbox lab is not running")
        return self._world

    async def start(self) -> None:
        """Start the lab's DNS and MX servers on loopback (a no-op if they run)."""
        if self._world is None:
            self._world = await sandbox_world(greylist_seconds=self.greylist_seconds).start()

    async def stop(self) -> None:
        world, self._world = self._world, None
        if world is not None:
            await world.stop()

    def engine_config(self) -> EngineConfig:
        """Where the engine sends: the lab's DNS server and port, nowhere else."""
        world = self.world
        return EngineConfig(
            helo=HELO,
            port=world.port,
            nameservers=(parse_nameserver(world.nameserver),),
            timeouts=LAB_TIMEOUTS,
            retry=lab_retry_policy(self.greylist_seconds),
            dns_timeout=2.0,
            smtp_phases=True,  # the table shows the step each conversation waits on
        )


#: What the sample campaign must end as; everyone else is delivered (README.md there).
SAMPLE_OUTCOMES: Final = {
    "nobody@bounce.test": "bounced",
    "unknown@bounce.test": "bounced",
    "claude@nullmx.test": "bounced",
    "ken@nullmx.test": "bounced",
    "dennis@nowhere.test": "bounced",
    "not-an-address": "invalid",
}


def expected_outcome(email: str) -> str:
    """The final status (its value) a sample recipient must end with against the lab."""
    return SAMPLE_OUTCOMES.get(email, "delivered")
