"""Pre-flight checks before real sending: can this machine, this address and this domain
send this campaign, and will receivers trust it? (``mxmailer preflight`` and the window's
preflight panel.)

Each check is a small module returning traffic lights (:class:`Status`) with a plain
result and a fix; :func:`run_preflight` runs them concurrently with bounded time, for the
route the mail takes: direct (:data:`CHECKS`) or through relays (:data:`RELAY_CHECKS`,
``Network.relay``). Qt-free; talks to DNS and recipients' MX servers (port 25 banner and
EHLO only) or the relays (banner, TLS, EHLO; never a login): no mail is sent.
"""

from core.preflight.inputs import Campaign, Network, Preflight, RelayRoute
from core.preflight.report import CheckResult, Report, Status
from core.preflight.runner import CHECKS, RELAY_CHECKS, Check, checks_for, run_preflight

__all__ = [
    "CHECKS", "RELAY_CHECKS", "Campaign", "Check", "CheckResult", "Network", "Preflight",
    "RelayRoute", "Report", "Status", "checks_for", "run_preflight",
]
