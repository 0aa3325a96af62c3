"""Certificates for lab servers: a throwaway CA (made with ``trustme``) and a server cert.

Owns the making of TLS material for STARTTLS on loopback and the SSL contexts built from
it: the server's, and a client's that trusts the lab CA (or trusts nothing, for clients
that do not verify, as MX delivery usually does not). It never writes a key anywhere a
test did not ask for, never loads the system trust store into a lab context, and never
talks to the network.
"""

from __future__ import annotations

import functools
import ssl
from pathlib import Path

import trustme

#: Names the lab's server certificate is valid for: loopback, and the lab's ``.test`` hosts.
DEFAULT_IDENTITIES = ("localhost", "127.0.0.1", "::1", "lab.test", "*.lab.test")


class LabTLS:
    """A CA and one server certificate issued by it, with the contexts that use them.

    Making one costs a few milliseconds (ECDSA keys); :func:`default_tls` shares one per
    process. The server context is made once and reused for every connection.
    """

    __slots__ = ("_server_context", "ca", "cert", "identities")

    def __init__(self, identities: tuple[str, ...] = DEFAULT_IDENTITIES) -> None:
        self.identities = identities
        self.ca = trustme.CA(organization_name="MX Mailer lab")
        self.cert = self.ca.issue_cert(*identities)
        self._server_context: ssl.SSLContext | None = None

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate, PEM: ``ssl.create_default_context(cadata=ca_pem.decode())``."""
        return self.ca.cert_pem.bytes()

    def write_ca(self, path: Path) -> Path:
        """Write the CA certificate (never a key) to ``path``, for ``cafile=`` users."""
        self.ca.cert_pem.write_to_path(str(path))
        return path

    def server_context(self) -> ssl.SSLContext:
        """The context a lab server upgrades STARTTLS with (no client certificates)."""
        if self._server_context is None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.cert.configure_cert(context)
            self._server_context = context
        return self._server_context

    def client_context(self, *, verify: bool = True) -> ssl.SSLContext:
        """A client context that trusts only the lab CA, or (``verify=False``) anything."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if verify:
            self.ca.configure_trust(context)
        else:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


@functools.cache
def default_tls() -> LabTLS:
    """The process-wide lab certificate, made on first use."""
    return LabTLS()
