"""The rehearsal lab: SMTP servers on loopback that tests, benchmarks and sandbox mode share.

``LabServer`` is ours and does what its :class:`Behaviour` scripts, including failing and
misbehaving on purpose; ``core.lab.aiosmtpd_server.AiosmtpdServer`` (imported from there,
as aiosmtpd is a test dependency only) is a third-party server that simply accepts. Both
record what they received. Nothing in this package listens anywhere but 127.0.0.1
or ::1, connects anywhere, or touches a real MX: see ``core.lab.loopback``.
"""

from core.lab.behaviour import (
    Act,
    Behaviour,
    Fault,
    Greylist,
    HangUp,
    Hostile,
    Stage,
    TLSMode,
    service_closing,
    unknown_users,
)
from core.lab.dns import DNSStats, LabDNS, LabZone
from core.lab.hostile import GARBAGE, UNSOLICITED
from core.lab.loopback import LOOPBACK_HOSTS
from core.lab.records import ConnectionRecord, LabStats, ReceivedMessage, Recorder
from core.lab.server import LabServer
from core.lab.tls import LabTLS, default_tls

__all__ = [
    "GARBAGE",
    "LOOPBACK_HOSTS",
    "UNSOLICITED",
    "Act",
    "Behaviour",
    "ConnectionRecord",
    "DNSStats",
    "Fault",
    "Greylist",
    "HangUp",
    "Hostile",
    "LabDNS",
    "LabServer",
    "LabStats",
    "LabTLS",
    "LabZone",
    "ReceivedMessage",
    "Recorder",
    "Stage",
    "TLSMode",
    "default_tls",
    "service_closing",
    "unknown_users",
]
