"""A real IMAP server for the bounce-mailbox tests: a private Dovecot on loopback.

:class:`DovecotIMAP` runs one Dovecot instance entirely inside a temporary directory (its
own configuration, ``base_dir``, ``state_dir``, log and mail), listening on 127.0.0.1
only, on two free ports: implicit TLS (``port``, as 993) and plain IMAP that requires
STARTTLS before login (``starttls_port``, as 143). Its certificate comes from a
throwaway CA (``core.lab.LabTLS``, made with trustme) for ``imap.test`` and 127.0.0.1;
``tls.write_ca(path)`` gives the CA to a client. One user (``user``, ``password``) from
a passwd-file; its Maildir, delivered as ``nobody``, is pre-filled with the mails given
to the constructor, and :meth:`append` adds one later through IMAP itself.

Dovecot's ``master`` runs in the foreground as our child (``-F``), in its own process
group: stopping it is a signal to that group and a bounded wait. It must start as root
(it drops to ``dovecot``, ``dovenull`` and the mail user); without the binary or root,
:func:`require_dovecot` skips, except under ``CI`` where it fails, as
``tests.integration.mta.require_mta`` does. ``.ci/install-mta.sh`` installs
``dovecot-imapd``. ``MXMAILER_KEEP_MTA=1`` keeps the directory after the test.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import pwd
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import pytest

from core.lab import LabTLS
from tests.integration.mta import _stop_group, free_port

INSTALL_HINT = "Dovecot is not installed: run .ci/install-mta.sh (CI does)"
HOST = "imap.test"
_LOOPBACK = "127.0.0.1"
_START_TIMEOUT = 20.0
_MAIL_USER = "nobody"
_MAIL_GROUP = "nogroup"


def find_dovecot() -> Path | None:
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    found = shutil.which("dovecot", path=path)
    return Path(found) if found else None


def require_dovecot() -> Path:
    """The dovecot binary, or skip; under ``CI`` fail instead (a skip would hide a
    missing install step)."""
    binary = find_dovecot()
    problem = None
    if binary is None:
        problem = INSTALL_HINT
    elif os.geteuid() != 0:
        problem = "Dovecot must start as root; run the IMAP tests as root"
    else:
        for name in ("dovecot", "dovenull", _MAIL_USER):
            try:
                pwd.getpwnam(name)
            except KeyError:
                problem = f"{INSTALL_HINT} (no user {name})"
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Dovecot IMAP tests: {problem}", pytrace=False)
        pytest.skip(problem)
    assert binary is not None
    return binary


class DovecotError(RuntimeError):
    """Dovecot did not start; the message carries the tail of its log."""


class DovecotIMAP:
    """A private Dovecot serving one user's Maildir pre-filled with ``mails``."""

    def __init__(
        self,
        mails: Sequence[bytes] = (),
        *,
        user: str = "bounces@sender.test",
        password: str = "imap-secret-Pa55",
    ) -> None:
        self.user = user
        self.password = password
        self.host = _LOOPBACK
        self.port = 0
        self.starttls_port = 0
        self.tls = LabTLS((HOST, _LOOPBACK))
        self._mails = list(mails)
        self._root: Path | None = None
        self._master: subprocess.Popen[bytes] | None = None

    # ---- lifetime ----------------------------------------------------------------------

    def __enter__(self) -> DovecotIMAP:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def root(self) -> Path:
        assert self._root is not None, "not started"
        return self._root

    def start(self) -> None:
        binary = require_dovecot()
        self._root = Path(tempfile.mkdtemp(prefix="mxm-imap-", dir="/tmp"))
        try:
            self._layout()
            self.port, self.starttls_port = free_port(), free_port()
            conf = self.root / "dovecot.conf"
            conf.write_text(self._config())
            log = (self.root / "master.out").open("wb")
            with log:
                self._master = subprocess.Popen(
                    [str(binary), "-F", "-c", str(conf)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        master, self._master = self._master, None
        if master is not None:
            _stop_group(master)
        root, self._root = self._root, None
        if root is not None and not os.environ.get("MXMAILER_KEEP_MTA"):
            shutil.rmtree(root, ignore_errors=True)

    # ---- what tests use ----------------------------------------------------------------

    def client(self) -> imaplib.IMAP4_SSL:
        """A logged-in IMAP session (implicit TLS, the lab CA trusted), INBOX selected."""
        imap = imaplib.IMAP4_SSL(
            self.host, self.port, ssl_context=self.tls.client_context(), timeout=10
        )
        imap.login(self.user, self.password)
        imap.select("INBOX")
        return imap

    def append(self, mail: bytes, mailbox: str = "INBOX") -> None:
        """Deliver one more mail (an IMAP APPEND, as a new, unseen message) to
        ``mailbox`` (its name as sent: modified UTF-7, quoted), made if missing."""
        imap = self.client()
        try:
            if mailbox != "INBOX":
                imap.create(mailbox)  # "already exists" is a NO: fine
            when = imaplib.Time2Internaldate(time.time())
            kind, data = imap.append(mailbox, "", when, mail)
            assert kind == "OK", data
        finally:
            imap.logout()

    def flags(self, mailbox: str = "INBOX") -> dict[int, set[str]]:
        """Every message's UID and flags in ``mailbox``, as the server holds them now."""
        imap = self.client()
        try:
            imap.select(mailbox)
            kind, data = imap.uid("FETCH", "1:*", "(UID FLAGS)")
            assert kind == "OK", data
        finally:
            imap.logout()
        found: dict[int, set[str]] = {}
        for line in data:
            if isinstance(line, bytes):
                match = re.search(rb"UID (\d+) FLAGS \(([^)]*)\)", line)
                if match is not None:
                    found[int(match.group(1))] = set(match.group(2).decode().split())
        return found

    def log_tail(self, lines: int = 40) -> str:
        text = ""
        for name in ("dovecot.log", "master.out"):
            path = self.root / name
            if path.exists():
                text += f"--- {name}\n" + "\n".join(path.read_text(errors="replace")
                                                   .splitlines()[-lines:]) + "\n"
        return text

    # ---- plumbing ----------------------------------------------------------------------

    def _layout(self) -> None:
        root = self.root
        for name in ("run", "state", "home"):
            (root / name).mkdir()
        os.chmod(root, 0o755)  # the login processes (dovenull) traverse base_dir
        cert = root / "cert.pem"
        key = root / "key.pem"
        self.tls.cert.cert_chain_pems[0].write_to_path(str(cert))
        self.tls.cert.private_key_pem.write_to_path(str(key))
        os.chmod(key, 0o600)
        (root / "users").write_text(f"{self.user}:{{PLAIN}}{self.password}::::::\n")
        maildir = root / "home" / self.user / "Maildir"
        for sub in ("cur", "new", "tmp"):
            (maildir / sub).mkdir(parents=True)
        for number, mail in enumerate(self._mails, 1):
            # Unique Maildir names; no flags (":2,"): every one unseen.
            (maildir / "new" / f"{1_700_000_000 + number}.M{number}P1.mxm-test").write_bytes(mail)
        owner = pwd.getpwnam(_MAIL_USER)
        for path in [root / "home", *(root / "home").rglob("*")]:
            os.chown(path, owner.pw_uid, owner.pw_gid)

    def _config(self) -> str:
        root = self.root
        dh = Path("/usr/share/dovecot/dh.pem")
        return "\n".join(
            [
                f"base_dir = {root}/run",
                f"state_dir = {root}/state",
                f"instance_name = mxm-imap-{os.getpid()}-{root.name}",
                f"log_path = {root}/dovecot.log",
                "protocols = imap",
                f"listen = {_LOOPBACK}",
                "default_internal_user = dovecot",
                "default_login_user = dovenull",
                "ssl = required",
                f"ssl_cert = <{root}/cert.pem",
                f"ssl_key = <{root}/key.pem",
                *([f"ssl_dh = <{dh}"] if dh.exists() else []),
                "ssl_min_protocol = TLSv1.2",
                "disable_plaintext_auth = yes",
                "auth_mechanisms = plain login",
                f"passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN {root}/users\n}}",
                "userdb {\n  driver = static\n"
                f"  args = uid={_MAIL_USER} gid={_MAIL_GROUP} home={root}/home/%u\n}}",
                "mail_location = maildir:~/Maildir",
                "service imap-login {",
                f"  inet_listener imap {{\n    address = {_LOOPBACK}\n"
                f"    port = {self.starttls_port}\n  }}",
                f"  inet_listener imaps {{\n    address = {_LOOPBACK}\n    port = {self.port}\n"
                "    ssl = yes\n  }",
                "}",
                "",
            ]
        )

    def _wait_ready(self) -> None:
        """Until the implicit-TLS port greets through a verified TLS session."""
        assert self._master is not None
        deadline = time.monotonic() + _START_TIMEOUT
        context = self.tls.client_context()
        while True:
            if self._master.poll() is not None:
                raise DovecotError(
                    f"dovecot exited with {self._master.returncode} while starting\n"
                    + self.log_tail()
                )
            with (
                contextlib.suppress(OSError, ssl.SSLError),
                socket.create_connection((_LOOPBACK, self.port), timeout=2.0) as raw,
                context.wrap_socket(raw, server_hostname=_LOOPBACK) as tls,
            ):
                if tls.recv(512).startswith(b"* OK"):
                    return
            if time.monotonic() >= deadline:
                raise DovecotError(f"dovecot not ready after {_START_TIMEOUT} s\n"
                                   + self.log_tail())
            time.sleep(0.05)
