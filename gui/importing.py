"""Importing a CSV into a new campaign (sandbox or real): the import dialog's logic,
without Qt.

Owns turning the user's choices (encoding, delimiter, address column; each "detected"
until chosen) into :func:`core.recipients.read_recipients` arguments, the dry run that
fills an :class:`~core.recipients.ImportSummary` without writing anything, the plain
words the dialog shows for it, and the import itself (through
:mod:`gui.campaign_build`). Every function here may run on a worker
thread: none touches a widget, and the import opens and closes its own SQLite connection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypedDict

from core.outgoing import MESSAGE_DRAFT
from core.recipients import (
    DELIMITERS,
    CsvPreview,
    ImportSummary,
    RecipientsError,
    preview_csv,
    read_recipients,
)
from core.store import NewRecipient
from gui.campaign_build import ImportCancelled, build_campaign
from gui.sandbox import (
    SAMPLE_MESSAGE,
    SampleCampaign,
    build_sandbox_campaign,
    sample_message_gaps,
)
from gui.settings_model import AppSettings, campaign_settings

#: The encodings offered besides "detected": what CSV exports are usually saved in.
ENCODINGS: Final = (
    "utf-8",
    "utf-8-sig",
    "cp1252",
    "cp1250",
    "iso-8859-1",
    "iso-8859-15",
    "utf-16",
    "mac_roman",
)
#: The delimiters offered besides "detected": character -> name (one source: core).
DELIMITER_NAMES: Final = DELIMITERS
#: Rows shown in the preview table.
PREVIEW_ROWS: Final = 20
#: Invalid reasons listed by name; the rest are summed up.
REASONS_SHOWN: Final = 8


class ReaderArguments(TypedDict):
    encoding: str | None
    delimiter: str | None
    address_column: int | None


@dataclass(frozen=True, slots=True)
class ImportChoices:
    """What the user chose in the dialog; None is "as detected"."""

    path: Path
    encoding: str | None = None
    delimiter: str | None = None  # the character
    address_column: int | None = None  # 0-based, among the preview's columns

    def reader_arguments(self) -> ReaderArguments:
        """The keyword arguments of :func:`read_recipients` for these choices."""
        return {
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "address_column": self.address_column,
        }


@dataclass(frozen=True, slots=True)
class DryRun:
    """What the file would become: preview, summary, or why it cannot be imported."""

    choices: ImportChoices
    preview: CsvPreview | None = None
    summary: ImportSummary | None = None
    error: str = ""
    #: Fields the sample message uses that this file lacks (they merge as empty).
    missing_fields: tuple[str, ...] = ()

    @property
    def importable(self) -> bool:
        return not self.error and self.summary is not None and self.summary.rows > 0

    @property
    def address_column(self) -> int | None:
        """The column the addresses are read from: the user's, or the detected one."""
        if self.choices.address_column is not None:
            return self.choices.address_column
        return self.preview.address_column if self.preview is not None else None


def plain_error(error: BaseException, path: Path) -> str:
    """The error in the user's words: the file by its name, no traceback."""
    text = str(error).replace(str(path), f"“{path.name}”")
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def dry_run(choices: ImportChoices) -> DryRun:
    """Read the whole file as the import would, writing nothing; never raises for a
    file that cannot be read (the error is in :attr:`DryRun.error`)."""
    path = choices.path
    try:
        preview = preview_csv(
            path, encoding=choices.encoding, delimiter=choices.delimiter, rows=PREVIEW_ROWS
        )
    except (RecipientsError, OSError) as error:
        return DryRun(choices, error=plain_error(error, path))
    summary = ImportSummary()
    try:
        for _ in read_recipients(path, summary, **choices.reader_arguments()):
            pass
    except (RecipientsError, OSError) as error:
        return DryRun(choices, preview, error=plain_error(error, path))
    if summary.rows == 0:
        return DryRun(choices, preview, summary, error="The file has no recipient rows.")
    missing = tuple(sample_message_gaps(summary.columns))
    if summary.valid == 0:
        problem = (
            f"No row has a valid address in the column “{summary.address_column}”: "
            "choose the column that holds the addresses."
        )
        return DryRun(choices, preview, summary, error=problem, missing_fields=missing)
    return DryRun(choices, preview, summary, missing_fields=missing)


def summary_lines(run: DryRun) -> list[str]:
    """The summary the dialog shows before Import is pressed, in plain words."""
    summary = run.summary
    if summary is None:
        return []
    lines = [
        f"{summary.rows} rows: {summary.valid} to send, {summary.invalid} invalid, "
        f"{summary.duplicates} duplicate(s) dropped"
    ]
    if summary.suppressed:
        lines.append(f"{summary.suppressed} suppressed")
    ranked = sorted(summary.invalid_reasons.items(), key=lambda item: (-item[1], item[0]))
    lines.extend(f"{count} invalid: {reason}" for reason, count in ranked[:REASONS_SHOWN])
    if len(ranked) > REASONS_SHOWN:
        rest = sum(count for _, count in ranked[REASONS_SHOWN:])
        lines.append(f"{rest} invalid for other reasons")
    if summary.smtputf8:
        lines.append(
            f"{summary.smtputf8} address(es) with a non-ASCII local part: only servers "
            "offering SMTPUTF8 accept those"
        )
    if summary.encoding_guessed:
        lines.append("The encoding was detected: check that the names look right.")
    if run.missing_fields:
        lines.append(
            f"The sample message uses {', '.join(run.missing_fields)}, which this file "
            "lacks: they will be empty."
        )
    return lines


#: Rows read between two looks at the cancel flag.
CANCEL_CHECK_ROWS: Final = 1000


def import_campaign(
    choices: ImportChoices,
    folder: Path,
    *,
    real: AppSettings | None = None,
    now: float | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> SampleCampaign:
    """Import the file into a new campaign in ``folder``: a sandbox campaign (the sample
    message, sent only to the lab), or with ``real`` (settings that choose real
    delivery) a real campaign from their sender whose message is a draft to write
    before anything can be sent. Raises RecipientsError or OSError as the reader does,
    and ImportCancelled once ``cancelled()`` says so (nothing is left behind)."""
    summary = ImportSummary()

    def rows() -> Iterator[NewRecipient]:
        read = read_recipients(choices.path, summary, **choices.reader_arguments())
        for number, row in enumerate(read, 1):
            if number % CANCEL_CHECK_ROWS == 0 and cancelled():
                raise ImportCancelled(f"the import of {choices.path.name} was cancelled")
            yield row

    if real is None:
        return build_sandbox_campaign(
            folder,
            rows,
            summary,
            SAMPLE_MESSAGE.read_bytes(),
            stem=f"sandbox-{_stem(choices.path)}",
            now=now,
            cancelled=cancelled,
        )
    settings = {**campaign_settings({}, real), MESSAGE_DRAFT: True}
    path = build_campaign(
        folder,
        rows,
        draft_message(real.sender),
        sender=real.sender,
        settings=settings,
        stem=f"campaign-{_stem(choices.path)}",
        now=now,
        cancelled=cancelled,
    )
    return SampleCampaign(path, summary)


def draft_message(sender: str) -> bytes:
    """The message a real campaign starts with: only its From, to be written in the
    message editor (the campaign is a draft until then, and nothing can send it)."""
    return (
        f"From: <{sender}>\r\nSubject: \r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    ).encode()


def _stem(path: Path) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in path.stem)
    return cleaned.strip("-")[:40] or "import"
