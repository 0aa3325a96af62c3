"""What a preflight found: one :class:`CheckResult` per check (a traffic light, what was
found in plain words, and what to do about it) gathered in a :class:`Report`.

Values only: no DNS, no sockets, no printing (``core.preflight.command`` prints, the
window's panel draws). The exit code lives here so that the command and the tests agree.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

#: Exit codes of ``mxmailer preflight``: all passed (warnings and unknowns allowed), some
#: check failed, bad usage.
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2

#: What the user should do when the network itself is the problem: port 25 blocked, the
#: address listed or in a provider's "no direct mail" range. Said in one place.
RELAY_ADVICE: Final = (
    "use relay mode: hand the mail to an SMTP relay (your provider's or a mail service's "
    "submission server on port 587) instead of delivering directly from this machine"
)


class Status(enum.Enum):
    """A traffic light. ``UNKNOWN`` is not "clean": the check could not tell.
    ``NOT_APPLICABLE``: the check is about a route the mail does not take (the direct
    route's checks in relay mode); neither a pass nor a fail."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    UNKNOWN = "unknown"
    NOT_APPLICABLE = "n/a"


#: Worst first: a check with several findings shows the worst of them.
SEVERITY: Final = {
    Status.FAIL: 3, Status.WARN: 2, Status.UNKNOWN: 1, Status.PASS: 0, Status.NOT_APPLICABLE: -1,
}


def worst(statuses: list[Status]) -> Status:
    """The most serious of ``statuses`` (PASS for none)."""
    return max(statuses, key=SEVERITY.__getitem__, default=Status.PASS)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One light: ``key`` names the check for programs (``rdns-ipv4``), ``title`` for
    people; ``result`` says what was found, ``fix`` what to do (empty when nothing)."""

    key: str
    title: str
    status: Status
    result: str
    fix: str = ""


def no_public_address(key: str, title: str) -> CheckResult:
    """Check ``key`` not made: it needs a public outgoing address and none is known."""
    return CheckResult(key, title, Status.UNKNOWN,
                       "Not checked: no public outgoing address is known.",
                       "Give the public address with --source-address to check it.")


@dataclass(frozen=True, slots=True)
class Report:
    results: tuple[CheckResult, ...]

    @property
    def failed(self) -> bool:
        return any(result.status is Status.FAIL for result in self.results)

    @property
    def exit_code(self) -> int:
        return EXIT_FAILED if self.failed else EXIT_OK

    def get(self, key: str) -> CheckResult:
        """The result of check ``key``; ``KeyError`` if it did not run."""
        for result in self.results:
            if result.key == key:
                return result
        raise KeyError(key)
