"""The pre-flight panel: before a real campaign starts, the checks of
``core.preflight`` as traffic lights, each with its result and its fix, and the choice
to "Send anyway" or "Cancel".

Owns the dialog and :class:`PreflightRunner`, the window's gate before a real Start: it
opens the panel at once ("Checking…"), runs the checks as a task on the app's loop (the
window stays responsive; the checks bound their own time), fills the panel in, and calls
the window back only on "Send anyway". A sandbox campaign never comes here: its mail
stays in the lab, and checking the internet for it would mean nothing. The checks ask the
nameservers and port of the real run's engine configuration (tests point it at a lab),
and take its route: with relays configured (the engine configuration's ``relay``), the
relays are checked and the direct route's checks are shown as not applicable.
A light is a colour *and* a symbol and a word, so colour is never the only signal.
"""

from __future__ import annotations

import asyncio
import dataclasses
import html
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Final

from PySide6.QtCore import Qt, SignalInstance
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from core.engine import EngineConfig
from core.preflight import Network, Preflight, Report, Status, run_preflight
from core.preflight.inputs import DEFAULT_DNSBL, RelayRoute, campaign_from_settings
from core.smtp import TLSPolicy
from core.store import CampaignStore
from gui.loop import ErrorReporter, spawn
from gui.session import CampaignSession, ConfigFactory
from gui.settings_model import AppSettings, campaign_settings
from gui.status_style import status_color

log = logging.getLogger(__name__)

#: The window's gate before a real Start: check ``session``, call ``proceed`` to go on.
PreflightGate = Callable[[CampaignSession, Callable[[], None]], object]

#: Each light: a symbol whose shape says it, a word, and the status colour key
#: (``gui.status_style``: Okabe-Ito colours, readable on light and dark palettes).
LIGHTS: Final = {
    Status.PASS: ("✔", "Pass", "delivered"),
    Status.WARN: ("!", "Warning", "waiting"),
    Status.FAIL: ("✘", "Fail", "bounced"),
    Status.UNKNOWN: ("?", "Unknown", "queued"),
    Status.NOT_APPLICABLE: ("⊘", "Not applicable", "suppressed"),
}
CHECKING: Final = (
    "Checking port 25, reverse DNS, blocklists, SPF, DKIM, DMARC and the recipients' "
    "providers… (a few seconds; nothing is sent)"
)
CHECKING_RELAY: Final = (
    "Checking the relays (connection, TLS, login offered), SPF for the relays, DKIM, DMARC "
    "and the recipients' providers… (a few seconds; nothing is sent, no login is made)"
)
#: Recipients counted between turns of the loop while the domains are read.
_SLICE: Final = 2000


class PreflightPanel(QDialog):
    """The lights, the results and fixes, and Send anyway / Cancel."""

    def __init__(self, parent: QWidget | None = None, *, relay: bool = False) -> None:
        super().__init__(parent)
        self.setWindowTitle(
            "Pre-flight checks before real sending" + (" through relays" if relay else "")
        )
        self.resize(860, 560)
        self.report: Report | None = None
        self.summary = QLabel(CHECKING_RELAY if relay else CHECKING)
        self.summary.setWordWrap(True)
        #: One label per light, in report order (the symbol and word, coloured).
        self.lights: list[QLabel] = []
        self._grid = QGridLayout()
        self._grid.setColumnStretch(2, 1)
        holder = QWidget()
        holder.setLayout(self._grid)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(holder)
        buttons = QDialogButtonBox()
        self.send_button: QPushButton = buttons.addButton(
            "Send anyway", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.cancel_button: QPushButton = buttons.addButton(
            "Cancel", QDialogButtonBox.ButtonRole.RejectRole
        )
        self.send_button.setEnabled(False)  # not before the checks have spoken
        self.cancel_button.setDefault(True)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(scroll, 1)
        layout.addWidget(buttons)

    def show_report(self, report: Report) -> None:
        """Fill in a light per result; Send anyway becomes possible."""
        self.report = report
        counts = Counter(result.status for result in report.results)
        if report.failed:
            self.summary.setText(
                f"{counts[Status.FAIL]} check(s) failed: mail sent now is likely to be "
                "rejected or junked. Fix what is red first, or send anyway."
            )
        elif counts[Status.WARN] or counts[Status.UNKNOWN]:
            self.summary.setText("No check failed; read the warnings before sending.")
        elif counts[Status.NOT_APPLICABLE]:
            self.summary.setText(
                f"Every check passed ({counts[Status.NOT_APPLICABLE]} not applicable: the "
                "mail goes through the relays, not directly from this computer)."
            )
        else:
            self.summary.setText("Every check passed.")
        for row, result in enumerate(report.results):
            symbol, word, key = LIGHTS[result.status]
            light = QLabel(f"{symbol} {word}")
            color = status_color(key, self.palette()).name()
            light.setStyleSheet(f"color: {color}; font-weight: bold;")
            light.setAccessibleName(f"{result.title}: {word}")
            title = QLabel(f"<b>{html.escape(result.title, quote=False)}</b>")
            text = html.escape(result.result, quote=False)
            if result.fix:
                text += f"<br><i>Fix:</i> {html.escape(result.fix, quote=False)}"
            body = QLabel(text)
            body.setWordWrap(True)
            body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            for column, widget in enumerate((light, title, body)):
                self._grid.addWidget(widget, row, column, Qt.AlignmentFlag.AlignTop)
            self.lights.append(light)
        self._grid.setRowStretch(len(report.results), 1)  # the rows stay together at the top
        self.send_button.setEnabled(True)
        # Enter sends only when nothing failed; with a red light it cancels.
        self.send_button.setDefault(not report.failed)
        self.cancel_button.setDefault(report.failed)
        (self.cancel_button if report.failed else self.send_button).setFocus()

    def show_error(self, text: str) -> None:
        """The checks could not run at all: say why; sending stays the user's choice."""
        self.summary.setText(f"The pre-flight checks could not run: {text}")
        self.send_button.setEnabled(True)


class PreflightRunner:
    """The window's gate: the panel, the checks behind it, and the call back."""

    def __init__(
        self,
        parent: QWidget,
        config_factory: ConfigFactory,
        reporter: ErrorReporter,
        *,
        closing: SignalInstance | None = None,
        dnsbl_zones: tuple[str, ...] = (DEFAULT_DNSBL,),
    ) -> None:
        self.parent = parent
        #: Emitted when the window closes: an open panel is cancelled, its checks stop.
        self.closing = closing
        self.config_factory = config_factory
        self.reporter = reporter
        self.dnsbl_zones = dnsbl_zones
        #: The panel shown last (tests and the window read it).
        self.panel: PreflightPanel | None = None

    def __call__(self, session: CampaignSession, proceed: Callable[[], None]) -> PreflightPanel:
        if session.sandboxed:  # never: the window gates real sessions only
            raise RuntimeError("a sandbox campaign is never checked against the internet")
        panel = PreflightPanel(self.parent, relay=bool(session.run_settings().relay_list))
        panel.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        panel.setWindowModality(Qt.WindowModality.WindowModal)
        task = spawn(self._run(panel, session), self.reporter)
        panel.accepted.connect(proceed)
        panel.finished.connect(lambda _: task.cancel())
        panel.destroyed.connect(lambda: task.cancel())
        closing = self.closing
        if closing is not None:
            closing.connect(panel.reject)
            panel.finished.connect(lambda _: closing.disconnect(panel.reject))
        self.panel = panel
        panel.open()
        return panel

    async def _run(self, panel: PreflightPanel, session: CampaignSession) -> None:
        try:
            # What Start will use: a campaign keeps the relays its file remembers.
            settings = session.run_settings()
            # The run's configuration, without its login: pre-flight never logs in, so
            # it needs no password (the keyring is not asked; Start asks it).
            config = self.config_factory(dataclasses.replace(settings, relay_user=""))
            preflight = await window_preflight(
                session.store, settings, config, fresh=session.fresh,
                dnsbl_zones=self.dnsbl_zones,
            )
            report = await run_preflight(preflight)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # shown in the panel: the user still decides
            log.exception("pre-flight checks failed")
            panel.show_error(str(error) or type(error).__name__)
            return
        panel.show_report(report)


async def window_preflight(
    store: CampaignStore,
    settings: AppSettings,
    config: EngineConfig,
    *,
    fresh: bool,
    dnsbl_zones: tuple[str, ...] = (DEFAULT_DNSBL,),
) -> Preflight:
    """What a real Start would send, as the checks see it: a fresh campaign takes the
    settings' HELO, DKIM and List-Unsubscribe at Start (``campaign_settings``), a resumed
    one keeps its own; the nameservers, port, STARTTLS policy and route (direct, or the
    relays) are the run's."""
    effective: Mapping[str, object] = (
        campaign_settings(store.settings, settings) if fresh else store.settings
    )
    domains = await pending_domains(store)
    campaign = campaign_from_settings(store.sender, store.message, effective, domains)
    network = Network(
        nameservers=config.nameservers,
        port=config.port,
        dnsbl_zones=dnsbl_zones,
        starttls_required=config.tls is TLSPolicy.REQUIRE,
        relay=_route(config, settings),
    )
    return Preflight(campaign, network)


def _route(config: EngineConfig, settings: AppSettings) -> RelayRoute | None:
    """The run's relays (the engine configuration's), with the login's user name from
    ``settings`` (the configuration was made without the login: no password needed)."""
    if config.relay is None:
        return None
    route = RelayRoute.of(config.relay)
    return dataclasses.replace(route, user=route.user or settings.relay_user or None)


async def pending_domains(store: CampaignStore) -> dict[str, int]:
    """Unfinished recipients per domain, the loop turning between slices (100,000 rows
    would otherwise hold the window for a moment)."""
    counts: Counter[str] = Counter()
    for index, state in enumerate(store.pending(), start=1):
        if state.domain:
            counts[state.domain] += 1
        if index % _SLICE == 0:
            await asyncio.sleep(0)
    return dict(counts)
