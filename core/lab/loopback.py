"""The only addresses a lab server may listen on: loopback, on an ephemeral port.

Owns that rule, so that no lab server, test or sandbox demo can ever be reached from
(or reach) anything but this machine. It never resolves names: ``localhost`` is refused
because a resolver could map it elsewhere.
"""

from __future__ import annotations

#: IPv4 and IPv6 loopback, spelled the one way each.
LOOPBACK_HOSTS = ("127.0.0.1", "::1")
#: Port 0: the kernel picks a free port, read back after binding.
EPHEMERAL_PORT = 0
#: Connections the kernel may hold for accept(). asyncio's default (100) is too few for a
#: benchmark's burst of connects: past it, some handshakes stall for seconds, or forever.
LISTEN_BACKLOG = 1024


def require_loopback(host: str) -> str:
    """Return ``host`` if it is a loopback address a lab server may use; else raise."""
    if host not in LOOPBACK_HOSTS:
        raise ValueError(
            f"a lab server listens on {' or '.join(LOOPBACK_HOSTS)} only, not {host!r}"
        )
    return host
