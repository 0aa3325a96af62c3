"""The only addresses a lab server may listen on: loopback (127.0.0.0/8 and ::1).

Owns that rule, so that no lab server, test or sandbox demo can ever be reached from
(or reach) anything but this machine. It never resolves names: ``localhost`` is refused
because a resolver could map it elsewhere.
"""

from __future__ import annotations

import ipaddress

#: The default IPv4 and IPv6 loopback addresses. Any 127.0.0.0/8 address is allowed too:
#: a lab of several MX hosts gives each its own address on one shared port, as real MX
#: hosts share port 25.
LOOPBACK_HOSTS = ("127.0.0.1", "::1")
#: Port 0: the kernel picks a free port, read back after binding.
EPHEMERAL_PORT = 0
#: Connections the kernel may hold for accept(). asyncio's default (100) is too few for a
#: benchmark's burst of connects: past it, some handshakes stall for seconds, or forever.
LISTEN_BACKLOG = 1024


def require_loopback(host: str) -> str:
    """Return ``host`` if it is a loopback address a lab server may use; else raise."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None or not address.is_loopback or str(address) != host:
        raise ValueError(
            f"a lab server listens on a loopback address (127.0.0.0/8 or ::1) only, "
            f"not {host!r}"
        )
    return host
