"""The main window: puts the panels together and turns the user's actions into calls on
the open :class:`gui.session.CampaignSession`.

Owns layout, menus, the toolbar, the once-a-second clock, opening a campaign as the
window's (``_attach``), routing each event batch to the table, the summary strip, the log
and the banners, and closing safely (a run is stopped before the file is closed). Its
mixins hold the rest of what the user does: :mod:`gui.campaign_files` (Open, Open
recent, Save as, a dropped .csv), :mod:`gui.exports` (report, bounces, per-domain
summary) and :mod:`gui.row_actions` (Retry and Remove). It never talks SMTP or SQL
itself, and it opens dialogs only from plain slots, never from a coroutine (see gui.loop).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from core import __version__
from core.events import Event, SenderProblemReported
from core.outgoing import MESSAGE_DRAFT
from core.recipients import RecipientsError
from core.store import RecipientState, StoreError
from core.template import TemplateError
from gui.actions import apply_context, build_actions
from gui.banners import Banner, Kind
from gui.campaign_files import CampaignFiles
from gui.campaign_files import dropped_csv as dropped_csv  # its old home: tests import it
from gui.display import STATUS_LABEL, notice_text, sender_problem_text
from gui.exports import ExportActions
from gui.import_dialog import ImportDialog
from gui.log_panel import LogPanel
from gui.loop import ErrorReporter, spawn
from gui.message_editor import MessageEditor
from gui.message_form import MessageForm, campaign_columns, campaign_with_message, form_from_eml
from gui.preflight_panel import PreflightGate, PreflightRunner
from gui.providers_panel import ProvidersModel, ProvidersPanel
from gui.recent import RECENT_FILE, RecentCampaigns
from gui.recipients_model import RecipientsModel
from gui.recipients_view import RecipientsPanel
from gui.row_actions import RowActions
from gui.rows import RecipientBook, load_rows
from gui.sandbox import (
    BANNER,
    DEMO_GREYLIST_SECONDS,
    REAL_BANNER,
    SampleCampaign,
    SandboxError,
    create_sample_campaign,
)
from gui.session import CampaignSession, ConfigFactory
from gui.settings_dialog import SettingsDialog
from gui.settings_model import (
    SETTINGS_FILE,
    AppSettings,
    load_settings,
    real_engine_config,
    save_settings,
)
from gui.state import BUSY, Action, ActionContext, RunState
from gui.summary import SummaryStrip
from gui.transcript_panel import TranscriptPanel
from gui.welcome import WelcomePage

TITLE: Final = "MX Mailer"
#: Asks the user a yes/no question (title, text): True for yes. Tests pass their own.
Confirm = Callable[[str, str], bool]
CLOSING: Final = (
    "Closing: finishing the messages in flight, then the window closes. "
    "Close again to cut the connections now (their recipients are settled honestly)."
)
CLOSE_QUESTION: Final = (
    "The campaign is sending. Stop sending and close?\n\nMessages already on their way "
    "finish first; every other recipient stays queued in the campaign file, and Resume "
    "goes on from there next time."
)


@dataclass(frozen=True, slots=True)
class WindowOptions:
    #: Where new sandbox campaign files are made.
    data_dir: Path
    greylist_seconds: int = DEMO_GREYLIST_SECONDS
    #: The app's settings file (default: settings.json in ``data_dir``).
    settings_file: Path | None = None
    #: The engine configuration of a real run (tests point it at a lab).
    config_factory: ConfigFactory = real_engine_config

    @property
    def settings_path(self) -> Path:
        return self.settings_file or self.data_dir / SETTINGS_FILE

    @property
    def recent_path(self) -> Path:
        return self.data_dir / RECENT_FILE


class MainWindow(CampaignFiles, ExportActions, RowActions, QMainWindow):
    #: The window has closed its campaign and may be destroyed; the app can quit.
    closed = Signal()

    def __init__(
        self,
        options: WindowOptions,
        reporter: ErrorReporter,
        *,
        now: Callable[[], float] = time.time,
        confirm: Confirm | None = None,
        preflight: PreflightGate | None = None,
    ) -> None:
        super().__init__()
        self.options = options
        #: Asks before the campaign file is changed (only ever from plain slots).
        self.confirm: Confirm = confirm if confirm is not None else self._ask
        self.reporter = reporter
        #: Checks a real campaign before its Start (gui.preflight_panel), then goes on.
        self.preflight: PreflightGate = preflight or PreflightRunner(
            self, options.config_factory, reporter, closing=self.closed
        )
        #: The app's settings (sandbox unless the user chose and acknowledged otherwise).
        self.settings: AppSettings = load_settings(options.settings_path)
        #: The settings dialog while it is open (one at a time).
        self.settings_dialog: SettingsDialog | None = None
        #: Campaign files opened lately (File ▸ Open recent).
        self.recent = RecentCampaigns(options.recent_path)
        self.session: CampaignSession | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._close_requests = 0
        #: The user (or a signal) already agreed to stop a run by closing.
        self._close_agreed = False
        self._shut = False
        self._shutdown_task: asyncio.Task[None] | None = None
        self._transcript_stale = False
        #: The import dialog while it is open (one at a time).
        self.import_dialog: ImportDialog | None = None
        #: The message editor while it is open (one at a time).
        self.message_editor: MessageEditor | None = None

        self.model = RecipientsModel(self, now=now)
        self.recipients = RecipientsPanel(self.model)
        self.summary = SummaryStrip(now=now)
        self.sandbox_banner = Banner(Kind.INFO, BANNER)
        self.problem_banner = Banner(Kind.PROBLEM, closable=True)
        self.error_banner = Banner(Kind.WARNING, closable=True)
        self.transcript = TranscriptPanel(now=now)
        self.log = LogPanel(now=now)
        self.providers = ProvidersModel(now=now)
        self.providers_panel = ProvidersPanel(self.providers)
        self.action_for = build_actions(
            self,
            {
                Action.NEW_SANDBOX: self.open_sandbox,
                Action.IMPORT_CSV: self._choose_csv,
                Action.OPEN: self._choose_campaign,
                Action.SAVE_AS: self._choose_save_as,
                Action.START: self.start,
                Action.PAUSE: self.pause,
                Action.RESUME: self.resume,
                Action.STOP: self.stop,
                Action.EXPORT_REPORT: self._choose_report,
                Action.EXPORT_BOUNCES: self._choose_bounces,
                Action.EXPORT_DOMAINS: self._choose_domains,
                Action.EDIT_MESSAGE: self.edit_message,
                Action.RETRY_FIXABLE: self.retry_fixable,
            },
        )
        self.welcome = WelcomePage(
            self.action_for[Action.NEW_SANDBOX],
            self.action_for[Action.IMPORT_CSV],
            self.action_for[Action.OPEN],
        )
        self._build_layout()
        self._build_menus()
        self.clock = QTimer(self)
        self.clock.setInterval(1000)
        self.clock.timeout.connect(self._tick)
        self.recipients.current_changed.connect(self._show_transcript)
        self.recipients.transcript_requested.connect(self._raise_transcript)
        self.recipients.retry_action.triggered.connect(self.retry_selected)
        self.recipients.remove_action.triggered.connect(self.remove_selected)
        self.recipients.set_row_rule(self._row_actions)
        reporter.sinks.append(self._internal_error)
        self.setAcceptDrops(True)  # a .csv dropped on the window is imported
        self.resize(1280, 800)
        self._refresh()

    # ---- building -----------------------------------------------------------------------

    def _build_layout(self) -> None:
        campaign = QWidget()
        campaign_layout = QVBoxLayout(campaign)
        campaign_layout.setContentsMargins(0, 0, 0, 0)
        campaign_layout.addWidget(self.summary)
        campaign_layout.addWidget(self.recipients, 1)
        self.pages = QStackedWidget()
        self.pages.addWidget(self.welcome)
        self.pages.addWidget(campaign)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(6, 6, 6, 0)
        for banner in (self.sandbox_banner, self.problem_banner, self.error_banner):
            banner.hide()
            layout.addWidget(banner)
        layout.addWidget(self.pages, 1)
        self.setCentralWidget(central)

        self.transcript_dock = self._dock("Transcript", self.transcript)
        self.log_dock = self._dock("Campaign log", self.log)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.transcript_dock)
        self.splitDockWidget(self.transcript_dock, self.log_dock, Qt.Orientation.Horizontal)
        self.providers_dock = self._dock("Providers", self.providers_panel)
        self.tabifyDockWidget(self.log_dock, self.providers_dock)
        self.log_dock.raise_()

        for dock in (self.transcript_dock, self.log_dock, self.providers_dock):
            dock.hide()  # shown with the first campaign: nothing to show before
        self._docks_shown = False

        self.state_label = QLabel()
        self.statusBar().addPermanentWidget(self.state_label)

    def _dock(self, title: str, widget: QWidget) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title.lower().replace(" ", "-"))
        dock.setWidget(widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
        )
        return dock

    def _build_menus(self) -> None:
        actions = self.action_for
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        for kind in (Action.NEW_SANDBOX, Action.OPEN):
            file_menu.addAction(actions[kind])
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addAction(actions[Action.SAVE_AS])
        file_menu.addSeparator()
        for kind in (Action.EXPORT_REPORT, Action.EXPORT_BOUNCES, Action.EXPORT_DOMAINS):
            file_menu.addAction(actions[kind])
        file_menu.addSeparator()
        self.settings_action = QAction("Se&ttings…", self)
        self.settings_action.setShortcut(QKeySequence.StandardKey.Preferences)
        self.settings_action.setStatusTip(
            "Sender, HELO name, limits, retries, DKIM, List-Unsubscribe, and where mail goes"
        )
        self.settings_action.triggered.connect(self.open_settings)
        file_menu.addAction(self.settings_action)
        file_menu.addSeparator()
        self.quit_action = QAction("&Quit", self)
        self.quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        self.quit_action.triggered.connect(self.close)
        file_menu.addAction(self.quit_action)

        campaign_menu = bar.addMenu("&Campaign")
        campaign_menu.addAction(actions[Action.IMPORT_CSV])
        campaign_menu.addAction(actions[Action.EDIT_MESSAGE])
        campaign_menu.addSeparator()
        for kind in (Action.START, Action.PAUSE, Action.RESUME, Action.STOP):
            campaign_menu.addAction(actions[kind])
        campaign_menu.addSeparator()
        campaign_menu.addAction(actions[Action.RETRY_FIXABLE])

        view_menu = bar.addMenu("&View")
        self.find_action = QAction("&Find recipient", self)
        self.find_action.setShortcut(QKeySequence.StandardKey.Find)
        self.find_action.triggered.connect(self._focus_search)
        view_menu.addAction(self.find_action)
        view_menu.addSeparator()
        view_menu.addAction(self.transcript_dock.toggleViewAction())
        view_menu.addAction(self.log_dock.toggleViewAction())
        view_menu.addAction(self.providers_dock.toggleViewAction())

        help_menu = bar.addMenu("&Help")
        about = QAction("&About MX Mailer", self)
        about.triggered.connect(self._about)
        help_menu.addAction(about)

        toolbar = QToolBar("Campaign")
        toolbar.setObjectName("campaign-toolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        toolbar.setMovable(False)
        groups = (
            (Action.NEW_SANDBOX, Action.OPEN),
            (Action.START, Action.PAUSE, Action.RESUME, Action.STOP),
            (Action.RETRY_FIXABLE,),
            (Action.EXPORT_REPORT, Action.EXPORT_BOUNCES),
        )
        for number, group in enumerate(groups):
            if number:
                toolbar.addSeparator()
            for kind in group:
                toolbar.addAction(actions[kind])
        self.addToolBar(toolbar)
        self.toolbar = toolbar

    # ---- opening campaigns --------------------------------------------------------------

    def open_sandbox(self) -> None:
        """Make a new campaign from the sandbox sample and open it (not started)."""
        if self._busy():
            return
        try:
            sample = create_sample_campaign(self.options.data_dir)
            session = self._open_session(sample.path)
        except (OSError, StoreError, RecipientsError, TemplateError, SandboxError) as error:
            self._problem(f"The sandbox campaign could not be made: {error}")
            return
        summary = sample.summary
        self._attach(session)
        self.log.add(
            f"sandbox campaign made from the sample: {summary.valid} to send, "
            f"{summary.invalid} invalid, {summary.duplicates} duplicates dropped"
        )

    def import_csv(self, path: Path) -> ImportDialog | None:
        """Open the Import dialog on ``path`` (window-modal, not blocking); once it has
        made the campaign, the campaign is opened (not started). None when busy."""
        if self._busy() or not self.action_for[Action.IMPORT_CSV].isEnabled():
            return None
        if self.import_dialog is not None:
            self.import_dialog.raise_()
            return self.import_dialog
        real = self.settings if self.settings.real else None
        dialog = ImportDialog(path, self.options.data_dir, self, real=real)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self._open_imported(dialog.campaign))
        dialog.finished.connect(self._import_dialog_closed)
        self.import_dialog = dialog
        dialog.open()
        return dialog

    def _import_dialog_closed(self) -> None:
        self.import_dialog = None

    def _open_imported(self, campaign: SampleCampaign | None) -> None:
        if campaign is None or self._busy():
            return
        if not self.open_file(campaign.path) or self.session is None:
            return
        summary = campaign.summary
        counts = (
            f"{summary.valid} to send, {summary.invalid} invalid, "
            f"{summary.duplicates} duplicates dropped"
        )
        if self.session.sandboxed:
            self.log.add(
                f"sandbox campaign imported from a CSV: {counts} (only addresses on the "
                "lab's .test domains can be reached)"
            )
            return
        self.log.add(f"real campaign imported from a CSV: {counts}; write its message next")
        self.edit_message()

    def edit_message(self) -> MessageEditor | None:
        """Open the Message editor on the campaign's message (window-modal, not
        blocking); once saved, the edited message and the same recipients become a new
        campaign of the same kind, which is opened (not started). None when it may not
        be edited."""
        session = self.session
        if session is None or not self.action_for[Action.EDIT_MESSAGE].isEnabled():
            return None
        if self.message_editor is not None:
            self.message_editor.raise_()
            return self.message_editor
        store = session.store
        try:
            form = form_from_eml(store.message)
        except TemplateError:
            form = MessageForm()
        rows = self.model.book.rows  # in the file's order; ids have gaps after a removal

        def recipient(number: int) -> RecipientState:
            return store.get(rows[number - 1].id)

        editor = MessageEditor(
            form,
            campaign_columns(store),
            recipient,
            len(rows),
            settings={k: v for k, v in store.settings.items() if k != MESSAGE_DRAFT},
            parent=self,
        )
        editor.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        editor.accepted.connect(lambda: self._save_message(editor.message))
        editor.finished.connect(self._message_editor_closed)
        self.message_editor = editor
        editor.open()
        return editor

    def _message_editor_closed(self) -> None:
        self.message_editor = None

    def _save_message(self, message: bytes | None) -> None:
        session = self.session
        if message is None or session is None or not session.fresh or self._busy():
            return
        old, store = session.path, session.store
        try:
            campaign = campaign_with_message(store, message, self.options.data_dir)
            if session.real:
                # Two sendable files with the same recipients could send them two
                # messages: the old one, never sent, becomes a draft nothing sends.
                store.set_settings({**store.settings, MESSAGE_DRAFT: True})
        except (OSError, StoreError, TemplateError) as error:
            self._problem(f"The edited message could not be saved: {error}")
            return
        if self.open_file(campaign.path):
            left = "is now a draft that cannot be sent" if session.real else "is left as it was"
            self.log.add(
                f"message edited: saved with the same {campaign.summary.rows} recipients as "
                f"a new campaign ({old.name} {left})"
            )

    def _open_session(self, path: Path) -> CampaignSession:
        return CampaignSession.open(
            path,
            reporter=self.reporter,
            greylist_seconds=self.options.greylist_seconds,
            settings=lambda: self.settings,
            config_factory=self.options.config_factory,
        )

    def _attach(self, session: CampaignSession) -> None:
        self._detach()
        self.session = session
        self.model.set_book(RecipientBook(load_rows(session.store), reload=session.store.get))
        self._unsubscribe = session.bus.subscribe(self._on_batch)
        session.changed.connect(self._refresh)
        session.run_ended.connect(self._run_ended)
        session.note.connect(self.log.add)
        self.problem_banner.hide()
        self.error_banner.hide()
        self.transcript.show_recipient(None, None)
        self.providers.forget()
        self.pages.setCurrentIndex(1)
        if not self._docks_shown:
            self._docks_shown = True
            self.transcript_dock.show()
            self.log_dock.show()
            self.providers_dock.show()
            self.log_dock.raise_()
            width = self.width()
            self.resizeDocks(
                [self.transcript_dock, self.log_dock],
                [width * 3 // 5, width * 2 // 5],
                Qt.Orientation.Horizontal,
            )
            self.resizeDocks([self.transcript_dock], [self.height() // 4], Qt.Orientation.Vertical)
        self.log.add(f"opened {session.path}")
        self.recent.add(session.path)
        if session.recovery is not None and session.recovery.ambiguous:
            self.log.add(
                f"{session.recovery.ambiguous} recipient(s) possibly delivered before the "
                "last run was interrupted are not sent again (shown as possibly delivered)"
            )
        blocked = session.send_blocked()
        if blocked is not None:
            self.log.add(f"view only: {blocked}")
        route = session.stored_route()
        if route is not None and not route.direct:
            self.log.add(f"this campaign is sent through {route.describe()} (its file says so)")
        self.clock.start()
        self._refresh()

    def _detach(self) -> None:
        old, self.session = self.session, None
        if old is None:
            return
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        old.changed.disconnect(self._refresh)
        old.run_ended.disconnect(self._run_ended)
        old.note.disconnect(self.log.add)
        spawn(old.close(), self.reporter)

    # ---- the run ------------------------------------------------------------------------

    def start(self) -> None:
        """Start sending; a real campaign only after its pre-flight checks (the panel's
        Send anyway) and once the user agrees to the count."""
        session = self.session
        if session is None or not self.action_for[Action.START].isEnabled():
            return
        if session.real:
            self.preflight(session, lambda: self._start_real(session))
            return
        self._begin(session)

    def _start_real(self, session: CampaignSession) -> None:
        if session is not self.session or not self.action_for[Action.START].isEnabled():
            return  # closed or started while the panel was open
        route = session.next_route()
        question = real_question(
            session.unfinished,
            session.store.sender,
            "" if route is None or route.direct else route.describe(),
        )
        if not self.confirm("Real delivery", question):
            self.log.add("real delivery not started: the user said no")
            return
        self._begin(session)

    def _begin(self, session: CampaignSession) -> None:
        self.problem_banner.hide()
        self.error_banner.hide()
        session.start()

    # ---- settings (a plain slot: the dialog is window-modal, not blocking) -------------

    def open_settings(self) -> SettingsDialog:
        """Open the Settings dialog; once accepted, the settings are saved and used."""
        if self.settings_dialog is not None:
            self.settings_dialog.raise_()
            return self.settings_dialog
        dialog = SettingsDialog(self.settings, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.accepted.connect(lambda: self.apply_settings(dialog.settings()))
        dialog.finished.connect(self._settings_dialog_closed)
        self.settings_dialog = dialog
        dialog.open()
        return dialog

    def _settings_dialog_closed(self) -> None:
        self.settings_dialog = None

    def apply_settings(self, settings: AppSettings) -> None:
        """Save ``settings`` and use them from now on (the next Start)."""
        try:
            save_settings(self.options.settings_path, settings)
        except OSError as error:
            self._problem(f"The settings could not be saved: {error}")
            return
        self.settings = settings
        mode = "real delivery" if settings.real else "sandbox"
        self.log.add(f"settings saved to {self.options.settings_path} (delivery: {mode})")
        self._refresh()

    def pause(self) -> None:
        if self.session is not None:
            self.session.pause()

    def resume(self) -> None:
        if self.session is not None:
            self.session.resume()

    def stop(self) -> None:
        if self.session is not None:
            self.session.stop()

    def _on_batch(self, batch: list[Event]) -> None:
        """One batch from the engine: table rows, then campaign news, then the strip."""
        result = self.model.apply(batch)
        for notice in result.notices:
            self.log.add(notice_text(notice))
            if isinstance(notice, SenderProblemReported):
                self.problem_banner.show_text(sender_problem_text(notice))
                self.providers.note_pause(notice.provider, notice.kind)
        current = self.recipients.current_id()
        if current is not None:
            position = self.model.book.position(current)
            if position is not None and position in result.changed:
                self._transcript_stale = True
        if self._transcript_stale and result.counters is not None:
            # Attempts are in the file once the engine has committed (it publishes
            # counters right after each commit).
            self._transcript_stale = False
            self.transcript.refresh(self.session.store if self.session else None)
        if result.counters is not None:
            self._show_counts()

    def _run_ended(self, failure: str) -> None:
        session = self.session
        if failure:
            self._problem(failure)
        elif session is not None:
            counts = ", ".join(
                f"{n} {STATUS_LABEL[status]}" for status, n in session.counts.items() if n
            )
            how = "finished" if session.run_state is RunState.FINISHED else "stopped"
            self.log.add(f"run {how}: {counts}")
        self.transcript.refresh(session.store if session else None)
        if self._close_requests:
            self.close()

    # ---- dialogs (plain slots only: never inside a coroutine) ---------------------------

    def _ask(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(
            self,
            title,
            text,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Yes

    def _about(self) -> None:
        QMessageBox.about(
            self,
            "About MX Mailer",
            f"<b>MX Mailer {__version__}</b><br>Bulk mail delivered directly to each "
            "recipient domain's MX servers.",
        )

    # ---- small things -------------------------------------------------------------------

    def _busy(self) -> bool:
        return self.session is not None and self.session.run_state in BUSY

    def context(self) -> ActionContext:
        return self.session.context() if self.session is not None else ActionContext()

    def _refresh(self) -> None:
        context = self.context()
        apply_context(self.action_for, context)
        self.settings_action.setEnabled(not self._busy())
        self.recipients.update_row_actions()
        session = self.session
        self._show_mode(session)
        if session is None:
            self.setWindowTitle(TITLE)
            self.state_label.setText("No campaign open")
            return
        mode = " [sandbox]" if session.sandboxed else " [REAL DELIVERY]"
        self.setWindowTitle(f"{session.path.name}{mode} — {TITLE}")
        self.state_label.setText(f"{session.path.name}: {context.run.value}")
        self._show_counts()

    def _show_mode(self, session: CampaignSession | None) -> None:
        """The mode banner: the sandbox's notice, or real delivery's warning."""
        if session is None:
            self.sandbox_banner.hide()
        elif session.sandboxed:
            self.sandbox_banner.show_kind(Kind.INFO, BANNER)
        else:
            blocked = session.send_blocked()
            text = REAL_BANNER.format(sender=session.store.sender or "<>")
            notice = session.route_notice()
            if blocked is not None:
                text = f"{text}. Not sendable now: {blocked}"
            elif notice is not None:
                text = f"{text}. Note: {notice}"
            self.sandbox_banner.show_kind(Kind.WARNING, text)

    def _show_counts(self) -> None:
        session = self.session
        if session is not None:
            self.summary.show_counts(
                session.counts,
                waiting=session.waiting,
                next_retry_at=session.next_retry_at,
                per_second=session.per_second,
            )
            self.providers.show(session.providers)

    def _tick(self) -> None:
        self.model.tick()
        self.summary.tick()
        self.providers.tick()

    def _show_transcript(self, recipient_id: int) -> None:
        store = self.session.store if self.session is not None else None
        self.transcript.show_recipient(store, recipient_id if recipient_id >= 0 else None)

    def _raise_transcript(self, recipient_id: int) -> None:
        self._show_transcript(recipient_id)
        self.transcript_dock.show()
        self.transcript_dock.raise_()

    def _focus_search(self) -> None:
        self.recipients.search.setFocus()
        self.recipients.search.selectAll()

    def _problem(self, text: str) -> None:
        self.log.add(text)
        self.error_banner.show_text(text)

    def _internal_error(self, text: str) -> None:
        self._problem(
            f"Something went wrong inside MX Mailer ({text}). The campaign file keeps every "
            "result so far; the log has the details."
        )

    # ---- closing ------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        """Close only once the campaign is closed: a run is stopped first (messages in
        flight finish); asked again, its connections are cut."""
        if self._shut:
            event.accept()
            return
        event.ignore()
        session = self.session
        if session is not None and session.run_state in BUSY and not self._close_agreed:
            # The question runs a nested event loop: the run may end while it is open.
            if not self.confirm("Close while sending", CLOSE_QUESTION):
                return
            self._close_agreed = True
        if session is not None and session is self.session and session.run_state in BUSY:
            self._close_requests += 1
            if self._close_requests == 1:
                self.error_banner.show_text(CLOSING)
                session.stop()
            else:
                session.abort()
            return
        if self._shutdown_task is None:
            self._shutdown_task = spawn(self._shutdown(), self.reporter)

    def shut_down(self) -> None:
        """Close without asking (Ctrl-C or SIGTERM in a terminal, a finished smoke run):
        a run is stopped as closing the window would, after the user agreed."""
        self._close_agreed = True
        self.close()

    async def _shutdown(self) -> None:
        self.clock.stop()
        session, self.session = self.session, None
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        try:
            if session is not None:
                await session.close()
        finally:
            if self._internal_error in self.reporter.sinks:
                self.reporter.sinks.remove(self._internal_error)
            self._shut = True
            self.close()
            self.closed.emit()


def real_question(count: int, sender: str, relays: str = "") -> str:
    """The confirmation asked before a real campaign starts; ``relays`` names the relays
    it goes through ("" : directly to the recipients' servers)."""
    how = (
        f"They go through {relays}, which hands them to the recipients' mail servers"
        if relays
        else "They go to the recipients' own mail servers"
    )
    return (
        f"Send {count:,} message{'s' if count != 1 else ''} from {sender or '<>'} to real "
        f"recipients?\n\n{how}, and cannot be called back."
    )
