"""List-Unsubscribe for bulk mail: Gmail and Yahoo require senders of 5,000 or more
messages a day to their users to offer one-click unsubscribe (RFC 8058: an https URL
taking a POST, with List-Unsubscribe-Post), and every bulk message is better off with it.
"""

from __future__ import annotations

from core.preflight.facts import Facts
from core.preflight.providers import BULK_THRESHOLD
from core.preflight.report import CheckResult, Status

KEY = "unsubscribe"
TITLE = "List-Unsubscribe"


async def check(facts: Facts) -> list[CheckResult]:
    campaign = facts.campaign
    if campaign.list_unsubscribe_url:
        return [CheckResult(KEY, TITLE, Status.PASS,
                            f"One-click unsubscribe is set ({campaign.list_unsubscribe_url})"
                            + (f", with {campaign.list_unsubscribe_mailto} too."
                               if campaign.list_unsubscribe_mailto else "."))]
    mailto = campaign.list_unsubscribe_mailto
    if mailto:
        return [CheckResult(KEY, TITLE, Status.WARN,
                            f"Only a mailto: unsubscribe is set ({mailto}): Gmail and Yahoo want "
                            "one-click (an https URL) from bulk senders.",
                            "Add a one-click unsubscribe URL (Settings, or "
                            "--list-unsubscribe-url).")]
    bulk = campaign.recipients >= BULK_THRESHOLD
    return [CheckResult(KEY, TITLE, Status.FAIL if bulk else Status.WARN,
                        "The messages carry no List-Unsubscribe header"
                        + (f", and the campaign has {campaign.recipients:,} recipients: bulk "
                           "mail without it is junked or rejected by Gmail and Yahoo."
                           if bulk else ": receivers trust bulk mail without it less."),
                        "Set a one-click unsubscribe URL (https, receiving a POST) and/or an "
                        "unsubscribe address (Settings, or --list-unsubscribe-url / "
                        "--list-unsubscribe-mailto).")]
