"""The Settings dialog: the sender, the sending limits and retries, signing, and where
mail goes (the sandbox, or real delivery once explicitly acknowledged).

Owns the form only: every field becomes an :class:`gui.settings_model.AppSettings` and
:func:`gui.settings_model.validate` says what is wrong, shown under the field; OK stays
disabled while anything is. Saving is the window's business.
"""

from __future__ import annotations

from typing import Final

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core.credentials import RELAY
from gui.settings_model import (
    MAX_CONCURRENCY,
    RELAY_SECURITY,
    STARTTLS,
    AppSettings,
    Delivery,
    validate,
)

SANDBOX_CHOICE: Final = "Sandbox (nothing leaves this computer)"
REAL_CHOICE: Final = "Real delivery to recipients' mail servers"
ACKNOWLEDGE: Final = (
    "I understand: Start on a real campaign sends mail to the recipients' real servers "
    "(after asking, with the count)."
)


class SettingsDialog(QDialog):
    def __init__(self, settings: AppSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.errors: dict[str, QLabel] = {}
        layout = QVBoxLayout(self)

        identity = self._group(layout, "Sender")
        self.sender_edit = self._line(
            identity, "sender", "Sender (envelope, MAIL FROM)", settings.sender
        )
        self.sender_edit.setPlaceholderText("news@example.com")
        self.helo = self._line(identity, "helo", "HELO name", settings.helo)
        self.helo.setPlaceholderText("the sender's domain")

        limits = self._group(layout, "Sending")
        self.concurrency = QSpinBox()
        self.concurrency.setRange(1, MAX_CONCURRENCY)
        self.concurrency.setValue(settings.concurrency)
        self._row(limits, "concurrency", "Connections in all", self.concurrency)
        self.per_destination = QSpinBox()
        self.per_destination.setRange(1, MAX_CONCURRENCY)
        self.per_destination.setValue(settings.per_destination)
        self._row(limits, "per_destination", "Connections per destination", self.per_destination)
        self.greylist_retry = self._seconds(
            limits, "greylist_retry", "First retry after greylisting", settings.greylist_retry
        )
        self.backoff = self._seconds(limits, "backoff", "Backoff after failures", settings.backoff)
        self.lifetime = QDoubleSpinBox()
        self.lifetime.setRange(0.0, 30.0)
        self.lifetime.setDecimals(2)
        self.lifetime.setSuffix(" days")
        self.lifetime.setValue(settings.lifetime / 86400)
        self._row(limits, "lifetime", "Give up after", self.lifetime)
        self.starttls = QComboBox()
        self.starttls.addItems(list(STARTTLS))
        self.starttls.setCurrentText(settings.starttls)
        self._row(limits, "starttls", "STARTTLS", self.starttls)

        signing = self._group(layout, "Signing and unsubscribing")
        self.dkim_key = QLineEdit(settings.dkim_key)
        self.dkim_key.setPlaceholderText("private key (PEM); empty: no DKIM signature")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._choose_key)
        key_row = QWidget()
        key_layout = QHBoxLayout(key_row)
        key_layout.setContentsMargins(0, 0, 0, 0)
        key_layout.addWidget(self.dkim_key, 1)
        key_layout.addWidget(browse)
        self._row(signing, "dkim_key", "DKIM key", key_row)
        self.dkim_selector = self._line(
            signing, "dkim_selector", "DKIM selector", settings.dkim_selector
        )
        self.dkim_domain = self._line(signing, "dkim_domain", "DKIM domain", settings.dkim_domain)
        self.dkim_domain.setPlaceholderText("the sender's domain")
        self.mailto = self._line(
            signing,
            "list_unsubscribe_mailto",
            "List-Unsubscribe mailto",
            settings.list_unsubscribe_mailto,
        )
        self.url = self._line(
            signing, "list_unsubscribe_url", "List-Unsubscribe URL", settings.list_unsubscribe_url
        )
        self.url.setPlaceholderText("https://example.com/u?e={{email}}")

        relay = self._group(layout, "Relay (optional: send through your own mail servers)")
        self.relays = self._line(relay, "relays", "Relays", settings.relays)
        self.relays.setPlaceholderText("smtp1.example.com smtp2.example.com:2587  (empty: direct)")
        self.relays.setToolTip(
            "Used by campaigns not sent yet, or sent directly so far. A campaign already "
            "sent through relays keeps them (its file remembers them): change its route "
            "with mxmailer send --state FILE --direct or --relay HOST."
        )
        self.relay_security = QComboBox()
        self.relay_security.addItems(list(RELAY_SECURITY))
        self.relay_security.setCurrentText(settings.relay_security)
        self.relay_security.setToolTip(
            "starttls: port 587, STARTTLS required; tls: port 465, TLS from the first byte. "
            "The relay's certificate is always verified."
        )
        self._row(relay, "relay_security", "Relay security", self.relay_security)
        self.relay_user = self._line(relay, "relay_user", "Relay login", settings.relay_user)
        self.relay_user.setPlaceholderText(
            f"empty: no login; the password: keyring '{RELAY.service}' or ${RELAY.env}"
        )
        self.relay_cafile = self._line(
            relay, "relay_cafile", "Relay CA file", settings.relay_cafile
        )
        self.relay_cafile.setPlaceholderText("empty: the system's certificate authorities")

        delivery = QGroupBox("Delivery")
        delivery_layout = QVBoxLayout(delivery)
        self.sandbox_choice = QRadioButton(SANDBOX_CHOICE)
        self.real_choice = QRadioButton(REAL_CHOICE)
        self.acknowledge = QCheckBox(ACKNOWLEDGE)
        for widget in (self.sandbox_choice, self.real_choice, self.acknowledge):
            delivery_layout.addWidget(widget)
        self.errors["real_acknowledged"] = self._error_label()
        delivery_layout.addWidget(self.errors["real_acknowledged"])
        note = QLabel(
            "Campaigns made in the sandbox are only ever sent to the lab, whatever is "
            "chosen here. Real delivery applies to real campaigns: imported from a CSV "
            "with \u201cReal recipients\u201d chosen, or made with `mxmailer send --state "
            "FILE` and opened here."
        )
        note.setWordWrap(True)
        delivery_layout.addWidget(note)
        layout.addWidget(delivery)
        real = settings.delivery is Delivery.REAL
        self.real_choice.setChecked(real)
        self.sandbox_choice.setChecked(not real)
        self.acknowledge.setChecked(settings.real_acknowledged and real)

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

        for line in (
            self.sender_edit,
            self.helo,
            self.dkim_key,
            self.dkim_selector,
            self.dkim_domain,
            self.mailto,
            self.url,
            self.relays,
            self.relay_user,
            self.relay_cafile,
        ):
            line.textChanged.connect(self._check)
        self.relay_security.currentIndexChanged.connect(self._check)
        for spin in (self.concurrency, self.per_destination):
            spin.valueChanged.connect(self._check)
        for double in (self.greylist_retry, self.backoff, self.lifetime):
            double.valueChanged.connect(self._check)
        self.starttls.currentIndexChanged.connect(self._check)
        for button in (self.sandbox_choice, self.real_choice, self.acknowledge):
            button.toggled.connect(self._check)
        self._check()

    # ---- building -----------------------------------------------------------------------

    def _group(self, layout: QVBoxLayout, title: str) -> QFormLayout:
        box = QGroupBox(title)
        form = QFormLayout(box)
        layout.addWidget(box)
        return form

    def _error_label(self) -> QLabel:
        label = QLabel()
        label.setWordWrap(True)
        label.setStyleSheet("color: #d55e00;")  # Okabe-Ito vermillion, as the banners
        label.hide()
        return label

    def _row(self, form: QFormLayout, name: str, label: str, widget: QWidget) -> None:
        form.addRow(label, widget)
        self.errors[name] = self._error_label()
        form.addRow("", self.errors[name])

    def _line(self, form: QFormLayout, name: str, label: str, text: str) -> QLineEdit:
        line = QLineEdit(text)
        self._row(form, name, label, line)
        return line

    def _seconds(self, form: QFormLayout, name: str, label: str, value: float) -> QDoubleSpinBox:
        spin = QDoubleSpinBox()
        spin.setRange(0.0, 7 * 86400.0)
        spin.setDecimals(0)
        spin.setSuffix(" s")
        spin.setValue(value)
        self._row(form, name, label, spin)
        return spin

    def _choose_key(self) -> None:
        name, _ = QFileDialog.getOpenFileName(
            self, "DKIM private key", self.dkim_key.text(), "PEM keys (*.pem *.key);;All files (*)"
        )
        if name:
            self.dkim_key.setText(name)

    # ---- the value ----------------------------------------------------------------------

    def settings(self) -> AppSettings:
        """The settings as the form shows them (valid or not)."""
        real = self.real_choice.isChecked()
        return AppSettings(
            sender=self.sender_edit.text().strip(),
            helo=self.helo.text().strip(),
            concurrency=self.concurrency.value(),
            per_destination=self.per_destination.value(),
            greylist_retry=self.greylist_retry.value(),
            backoff=self.backoff.value(),
            lifetime=round(self.lifetime.value() * 86400, 3),
            starttls=self.starttls.currentText(),
            dkim_key=self.dkim_key.text().strip(),
            dkim_selector=self.dkim_selector.text().strip(),
            dkim_domain=self.dkim_domain.text().strip(),
            list_unsubscribe_mailto=self.mailto.text().strip(),
            list_unsubscribe_url=self.url.text().strip(),
            delivery=Delivery.REAL if real else Delivery.SANDBOX,
            real_acknowledged=real and self.acknowledge.isChecked(),
            relays=self.relays.text().strip(),
            relay_security=self.relay_security.currentText(),
            relay_user=self.relay_user.text().strip(),
            relay_cafile=self.relay_cafile.text().strip(),
        )

    def problems(self) -> dict[str, str]:
        return validate(self.settings())

    def _check(self) -> None:
        self.acknowledge.setEnabled(self.real_choice.isChecked())
        problems = self.problems()
        for name, label in self.errors.items():
            text = problems.get(name, "")
            label.setText(text)
            label.setVisible(bool(text))
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setEnabled(not problems)
        ok.setToolTip("" if not problems else "Fix the fields marked in red first.")

    def accept(self) -> None:
        if not self.problems():
            super().accept()
