"""A real MTA for interop tests: a private Postfix, greylisting with a private postgrey.

Our lab servers only prove that the driver agrees with servers we wrote or picked to be
simple. Postfix is what a large share of real MX hosts run, and postgrey is the greylisting
policy server most Postfix sites use, so they are the reference the driver must get along
with: their replies, their PIPELINING, their dot-unstuffing, their STARTTLS.

:class:`PostfixMX` runs one Postfix instance entirely inside a temporary directory (its own
``config_directory``, queue, data directory, log file and Maildirs), receiving mail for one
``.test`` domain on a free loopback port. It never sends mail anywhere: every transport
that could leave the machine is ``error:``, ``master.cf`` has no ``smtp``, ``relay``,
``local`` or ``pickup`` service at all, and ``relayhost`` is empty. Postfix's ``master``
runs in the foreground as our child, in its own process group, so stopping it is a signal
to one group and a bounded wait, not a ``postfix stop`` that depends on pid files.

Postfix must start as root (it drops to ``mail_owner``); the tests run as root on CI and on
the developers' machines. Without the binaries, or without root, :func:`require_mta` skips,
except under ``CI`` where a skip would hide a missing install step, so it fails instead.
``.ci/install-mta.sh`` installs both packages. Set ``MXMAILER_KEEP_MTA=1`` to keep an
instance's directory (configuration, logs, mail) after it stops, for a post-mortem.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import pytest

from core.connection import Target
from core.lab import LabTLS

INSTALL_HINT = "Postfix and postgrey are not installed: run .ci/install-mta.sh (CI does)"

#: Headers Postfix (smtpd, cleanup, virtual) and postgrey put on top of a received message.
PREPENDED_HEADERS = frozenset(
    {b"return-path", b"x-original-to", b"delivered-to", b"received", b"x-greylist"}
)

_LOOPBACK = "127.0.0.1"
_MAILDIR = "inbox"
_START_TIMEOUT = 20.0
_START_ATTEMPTS = 3
_TMP = "/tmp" if os.path.isdir("/tmp") else None
_STOP_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class MTATools:
    """Where the MTA programs are: ``postfix`` (the control command), ``postconf`` and
    ``postgrey``. ``master`` is found per instance, from the instance's ``postconf``."""

    postfix: Path
    postconf: Path
    postgrey: Path


def find_tools() -> MTATools | None:
    """The installed MTA programs, or None if any is missing (sbin is not always on PATH)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    found = [shutil.which(name, path=path) for name in ("postfix", "postconf", "postgrey")]
    if any(program is None for program in found):
        return None
    postfix, postconf, postgrey = (Path(p) for p in found if p is not None)
    return MTATools(postfix, postconf, postgrey)


def require_mta() -> MTATools:
    """The MTA programs, or skip the test; under ``CI`` fail instead, since CI must never
    skip: a green run that skipped the interop tests would hide a missing install step."""
    tools = find_tools()
    problem = None
    if tools is None:
        problem = INSTALL_HINT
    elif os.geteuid() != 0:
        problem = "Postfix's master must start as root; run the interop tests as root"
    else:
        missing = [name for name in ("postfix", "postgrey") if not _user_exists(name)]
        if missing:
            problem = f"{INSTALL_HINT} (no user {', '.join(missing)})"
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Postfix interop tests: {problem}", pytrace=False)
        pytest.skip(problem)
    assert tools is not None
    return tools


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def free_port(host: str = _LOOPBACK) -> int:
    """A port nothing listens on right now. Postfix and postgrey need a number in their
    configuration before they bind, so they cannot be handed port 0; the window between
    this close and their bind is small and only other local processes can race it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class MTAError(RuntimeError):
    """The MTA did not start, or misbehaved; the message carries the tail of its logs."""


class PostfixMX:
    """A private Postfix receiving mail for ``domain`` on loopback, optionally greylisting
    through a private postgrey, optionally offering STARTTLS (``tls``: a certificate for
    ``mx.<domain>`` from a throwaway CA; ``mx.tls.client_context()`` verifies it).

    Users: any local part made of ``[a-z0-9_-]`` (starting with a letter or digit) exists;
    anything else is an unknown user (550 5.1.1). All users share one Maildir, delivered as
    the unprivileged ``mailbox_user``; :meth:`maildir_messages` tells them apart by the
    Delivered-To header. Mail for any other domain is refused as relaying (554 5.7.1).
    ``pipelining=False`` leaves PIPELINING out of the EHLO reply.

    Use as a context manager, sync or async (the async one runs the blocking start and
    stop in a thread)::

        async with PostfixMX(greylist_delay=2) as mx:
            report = await deliver(mx.target(), txns, config)
            messages = await mx.wait_for_messages(1, "someone@interop.test")

    ``greylist_delay`` is postgrey's ``--delay`` in whole seconds (its minimum is 1: it
    treats 0 as "unset" and uses 300); None runs no policy service at all.
    """

    def __init__(
        self,
        domain: str = "interop.test",
        *,
        greylist_delay: int | None = 2,
        greylist_text: str | None = None,
        tls: bool = False,
        pipelining: bool = True,
        mailbox_user: str = "nobody",
    ) -> None:
        if greylist_delay is not None and greylist_delay < 1:
            raise ValueError("postgrey's --delay must be at least 1 s (0 means its 300 s)")
        self.domain = domain
        self.host = f"mx.{domain}"
        self.address = _LOOPBACK
        self.greylist_delay = greylist_delay
        self.greylist_text = greylist_text
        self.pipelining = pipelining
        self.port = 0
        self.policy_port = 0
        self.tls: LabTLS | None = LabTLS((self.host, _LOOPBACK)) if tls else None
        self._mailbox_user = mailbox_user
        self._tools: MTATools | None = None
        self._root: Path | None = None
        self._master: subprocess.Popen[bytes] | None = None
        self._postgrey: subprocess.Popen[bytes] | None = None

    # ---- the context managers -----------------------------------------------------------

    def __enter__(self) -> PostfixMX:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> PostfixMX:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    # ---- what tests use -----------------------------------------------------------------

    @property
    def root(self) -> Path:
        """The instance's temporary directory (config, queue, data, logs, mail)."""
        if self._root is None:
            raise MTAError("the MTA is not started")
        return self._root

    def target(self) -> Target:
        """Where the driver should connect: the MX name (the certificate's name) and port."""
        return Target(self.host, self.address, self.port)

    @property
    def maildir(self) -> Path:
        """The one Maildir every user of the domain is delivered to."""
        return self.root / "mail" / _MAILDIR

    def maildir_messages(self, recipient: str | None = None) -> list[bytes]:
        """Messages delivered so far (to ``recipient``, or to anyone), oldest first, as
        Postfix stored them: LF line ends, with the trace headers on top."""
        folder = self.maildir / "new"
        files = list(folder.iterdir()) if folder.is_dir() else []
        # Maildir names start with the delivery time in seconds ("1700000000.V801I2M3.mx"):
        # the mtime orders them within the same second.
        files.sort(key=lambda path: (path.stat().st_mtime_ns, path.name))
        messages = [path.read_bytes() for path in files]
        if recipient is None:
            return messages
        wanted = recipient.lower().encode()
        return [m for m in messages if delivered_to(m) == wanted]

    async def wait_for_messages(
        self, count: int, recipient: str | None = None, *, timeout: float = 10.0
    ) -> list[bytes]:
        """Wait until ``count`` messages were delivered; Postfix delivers after it answered
        250 to the end of data (queue manager, then the virtual agent), so a test that
        reads the Maildir at once would race it."""
        deadline = time.monotonic() + timeout
        while True:
            messages = self.maildir_messages(recipient)
            if len(messages) >= count:
                return messages
            if time.monotonic() >= deadline:
                raise MTAError(
                    f"{len(messages)} of {count} messages delivered after {timeout} s\n"
                    + self.log_tail()
                )
            await asyncio.sleep(0.05)

    def log_tail(self, lines: int = 40) -> str:
        """The end of Postfix's log and postgrey's, for assertion and error messages."""
        if self._root is None:
            return "(the MTA never started: no logs)"
        parts = []
        for name in ("maillog", "master.out", "postgrey.log"):
            path = self._root / "log" / name
            text = path.read_text(errors="replace") if path.exists() else ""
            tail = "\n".join(text.splitlines()[-lines:])
            parts.append(f"---- {name} (last {lines} lines) ----\n{tail or '(empty)'}")
        return "\n".join(parts)

    def log_lines(self, pattern: str) -> list[str]:
        """Postfix log lines matching the regular expression ``pattern``."""
        path = self.root / "log" / "maillog"
        text = path.read_text(errors="replace") if path.exists() else ""
        regex = re.compile(pattern)
        return [line for line in text.splitlines() if regex.search(line)]

    # ---- start and stop -----------------------------------------------------------------

    def start(self) -> None:
        """Write the configuration, start postgrey, then Postfix; return when Postfix
        greets on its port. Whatever fails, nothing is left running.

        A port taken between :func:`free_port` and the bind (by another test process)
        makes master or postgrey exit at once; that alone is retried, with new ports."""
        self._tools = require_mta()
        for attempt in range(1, _START_ATTEMPTS + 1):
            # /tmp rather than $TMPDIR: Postfix's unprivileged daemons must traverse every
            # parent directory, and its Unix sockets' paths must stay under 108 bytes.
            self._root = Path(tempfile.mkdtemp(prefix="mxmailer-postfix-", dir=_TMP))
            try:
                self._layout()
                if self.greylist_delay is not None:
                    self._start_postgrey()
                self._start_postfix()
                return
            except MTAError as error:
                self.stop()
                if "already in use" not in str(error) or attempt == _START_ATTEMPTS:
                    raise
            except BaseException:
                self.stop()
                raise

    def stop(self) -> None:
        """Stop Postfix (its whole process group) and postgrey, bounded, then remove the
        directory. Safe to call twice and after a failed start."""
        try:
            if self._master is not None:
                _stop_group(self._master)
            if self._postgrey is not None:
                port = self.policy_port
                # Its database is thrown away with the directory: no need to be patient.
                _stop_group(self._postgrey, wake=lambda: _accepts(port), grace=2.0)
        finally:
            self._master = None
            self._postgrey = None
            if self._root is not None and not os.environ.get("MXMAILER_KEEP_MTA"):
                shutil.rmtree(self._root, ignore_errors=True)
                self._root = None

    # ---- configuration --------------------------------------------------------------------

    def _layout(self) -> None:
        root = self.root
        # mkdtemp makes 0700; Postfix's daemons run as mail_owner and the virtual agent as
        # the mailbox user, and both must traverse the tree.
        # Modes are set explicitly, not through mkdir/open, so that a strict umask (077)
        # cannot make main.cf or a map unreadable to them.
        root.chmod(0o755)
        for name in ("conf", "queue", "data", "log", "mail", "postgrey"):
            (root / name).mkdir()
            (root / name).chmod(0o755)
        postfix_user = pwd.getpwnam("postfix")
        mailbox_user = pwd.getpwnam(self._mailbox_user)
        os.chown(root / "data", postfix_user.pw_uid, postfix_user.pw_gid)
        os.chown(root / "mail", mailbox_user.pw_uid, mailbox_user.pw_gid)
        self.port = free_port()
        self.policy_port = free_port() if self.greylist_delay is not None else 0
        conf = root / "conf"
        # One Maildir for all users: Postfix refuses "$1" substitution in a map that
        # names files, so mail is told apart by the Delivered-To header virtual adds.
        (conf / "virtual_mailboxes").write_text(
            f"/^[a-z0-9][a-z0-9_-]*@{re.escape(self.domain)}$/ {_MAILDIR}/\n"
        )
        (conf / "main.cf").write_text(self._main_cf(mailbox_user))
        (conf / "master.cf").write_text(self._master_cf())
        for path in conf.iterdir():
            path.chmod(0o644)
        if self.tls is not None:
            chain = conf / "tls.pem"  # key first, then the certificate chain
            self.tls.cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
            chain.chmod(0o600)

    def _main_cf(self, mailbox_user: pwd.struct_passwd) -> str:
        root = self.root
        outbound = "error:the interop test MTA never sends mail"
        restrictions = ["reject_unauth_destination", "reject_unlisted_recipient"]
        if self.greylist_delay is not None:
            restrictions.append(f"check_policy_service inet:{_LOOPBACK}:{self.policy_port}")
        lines = [
            "compatibility_level = 3.6",
            f"myhostname = {self.host}",
            f"mydomain = {self.domain}",
            "myorigin = $myhostname",
            f"queue_directory = {root / 'queue'}",
            f"data_directory = {root / 'data'}",
            "mail_owner = postfix",
            "setgid_group = postdrop",
            f"maillog_file = {root / 'log' / 'maillog'}",
            f"maillog_file_prefixes = {root}",
            f"inet_interfaces = {_LOOPBACK}",
            "inet_protocols = ipv4",
            # Nothing is local, nothing is relayed, nothing leaves.
            "mydestination =",
            "relay_domains =",
            "relayhost =",
            "mynetworks = 127.0.0.1/32",
            f"default_transport = {outbound}",
            f"relay_transport = {outbound}",
            f"local_transport = {outbound}",
            "fallback_transport =",
            "alias_maps =",
            "alias_database =",
            "notify_classes =",
            "biff = no",
            # Mail from 127.0.0.1 is "remote": no header rewriting, no added Date/Message-Id,
            # so what lands in the Maildir is what the client sent, below the trace headers.
            "local_header_rewrite_clients =",
            "always_add_missing_headers = no",
            "append_dot_mydomain = no",
            "smtpd_peername_lookup = no",
            f"smtpd_banner = $myhostname ESMTP Postfix (interop lab {self.domain})",
            # No permit_mynetworks anywhere: loopback is greylisted like the internet.
            "smtpd_relay_restrictions = reject_unauth_destination",
            f"smtpd_recipient_restrictions = {', '.join(restrictions)}",
            f"virtual_mailbox_domains = {self.domain}",
            f"virtual_mailbox_base = {root / 'mail'}",
            f"virtual_mailbox_maps = regexp:{root / 'conf' / 'virtual_mailboxes'}",
            f"virtual_uid_maps = static:{mailbox_user.pw_uid}",
            f"virtual_gid_maps = static:{mailbox_user.pw_gid}",
            # A client that sends past a command that must end a pipelined group (EHLO,
            # DATA, STARTTLS, QUIT: RFC 2920 section 3.1) is disconnected with 554, as
            # sites that closed the SMTP smuggling hole do (Postfix >= 3.7.9).
            "smtpd_forbid_unauth_pipelining = yes",
            "smtpd_data_restrictions = reject_unauth_pipelining",
        ]
        if not self.pipelining:
            lines.append("smtpd_discard_ehlo_keywords = pipelining")
        if self.tls is not None:
            lines += [
                "smtpd_tls_security_level = may",
                f"smtpd_tls_chain_files = {root / 'conf' / 'tls.pem'}",
                "smtpd_tls_loglevel = 1",
                "smtpd_tls_received_header = yes",
            ]
        return "\n".join(lines) + "\n"

    def _master_cf(self) -> str:
        # chroot "n" everywhere: a chroot would need copies of /etc files in the queue.
        services = [
            f"{_LOOPBACK}:{self.port} inet n - n - - smtpd",
            "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr",
            "tlsmgr unix - - n 1000? 1 tlsmgr",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "flush unix n - n 1000? 0 flush",
            "proxymap unix - - n - - proxymap",
            "showq unix n - n - - showq",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "discard unix - - n - - discard",
            "virtual unix - n n - - virtual",
            "anvil unix - - n - 1 anvil",
            "postlog unix-dgram n - n - 1 postlogd",
        ]
        return "\n".join(services) + "\n"

    # ---- processes --------------------------------------------------------------------------

    def _start_postgrey(self) -> None:
        assert self._tools is not None and self.greylist_delay is not None
        root = self.root
        dbdir = root / "postgrey"
        user = pwd.getpwnam("postgrey")
        os.chown(dbdir, user.pw_uid, grp.getgrnam("postgrey").gr_gid)
        # Empty whitelists of our own: the system's would whitelist by client name, and
        # its .local files are whatever the machine's admin put there.
        clients, recipients = root / "conf" / "wl_clients", root / "conf" / "wl_recipients"
        clients.write_text("")
        recipients.write_text("")
        command = [
            str(self._tools.postgrey),
            f"--inet={_LOOPBACK}:{self.policy_port}",
            f"--dbdir={dbdir}",
            f"--delay={self.greylist_delay}",
            "--max-age=1",
            "--auto-whitelist-clients=0",
            f"--whitelist-clients={clients}",
            f"--whitelist-recipients={recipients}",
            f"--hostname={self.host}",
            "--verbose",
        ]
        if self.greylist_text is not None:
            command.append(f"--greylist-text={self.greylist_text}")
        log = (root / "log" / "postgrey.log").open("wb")
        with log:
            self._postgrey = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        port = self.policy_port
        self._wait_until(self._postgrey, "postgrey", port, lambda: _answers_policy(port))

    def _start_postfix(self) -> None:
        assert self._tools is not None
        conf = self.root / "conf"
        daemon_directory = self._run(
            str(self._tools.postconf), "-c", str(conf), "-dh", "daemon_directory"
        ).strip()
        # "postfix check" creates the queue's directories with Postfix's owners and modes
        # (post-install create-missing) and validates main.cf and master.cf.
        self._run(str(self._tools.postfix), "-c", str(conf), "check")
        log = (self.root / "log" / "master.out").open("wb")
        with log:
            # -d: stay in the foreground as our child (it still makes itself a session
            # leader, so its daemons are in its process group); -c: our config only.
            self._master = subprocess.Popen(
                [str(Path(daemon_directory) / "master"), "-d", "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "MAIL_CONFIG": str(conf)},
            )
        banner = f"220 {self.host} ".encode()
        self._wait_until(self._master, "Postfix", self.port, lambda: _greets(self.port, banner))

    def _run(self, *command: str) -> str:
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                timeout=_START_TIMEOUT,
                check=False,
                env={**os.environ, "MAIL_CONFIG": str(self.root / "conf")},
            )
        except subprocess.TimeoutExpired as error:
            raise MTAError(f"{' '.join(command)} took over {_START_TIMEOUT} s") from error
        output = (done.stdout + done.stderr).decode(errors="replace")
        if done.returncode != 0:
            raise MTAError(
                f"{' '.join(command)} exited {done.returncode}:\n{output}\n{self.log_tail()}"
            )
        return done.stdout.decode()

    def _wait_until(
        self, process: subprocess.Popen[bytes], name: str, port: int, ready: Callable[[], bool]
    ) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while not ready():
            if process.poll() is not None:
                # master's fatal errors before its log daemon runs go to syslog, which a
                # container may not have: name the usual cause ourselves.
                cause = f": 127.0.0.1:{port} already in use" if _port_taken(port) else ""
                raise MTAError(
                    f"{name} exited with {process.returncode} while starting{cause}\n"
                    + self.log_tail()
                )
            if time.monotonic() >= deadline:
                raise MTAError(f"{name} not ready after {_START_TIMEOUT} s\n" + self.log_tail())
            time.sleep(0.05)


def _port_taken(port: int) -> bool:
    """True if another socket listens on the loopback ``port`` (as a server binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((_LOOPBACK, port))
        except OSError:
            return True
    return False


def _accepts(port: int) -> bool:
    """True once something accepts TCP connections on the loopback ``port``."""
    try:
        with socket.create_connection((_LOOPBACK, port), timeout=1.0):
            return True
    except OSError:
        return False


def _greets(port: int, banner: bytes) -> bool:
    """True once our Postfix greets on ``port`` with ``banner`` (its listening socket exists
    as soon as master binds it, before any smtpd could answer; and a banner that is not
    ours means another server took the port)."""
    try:
        with socket.create_connection((_LOOPBACK, port), timeout=2.0) as probe:
            greeting = probe.recv(512)
            with contextlib.suppress(OSError):
                probe.sendall(b"QUIT\r\n")
                probe.recv(512)
            return greeting.startswith(banner)
    except OSError:
        return False


def _answers_policy(port: int) -> bool:
    """True once a policy server on ``port`` answers a request (Postfix's policy delegation
    protocol): postgrey binds, then opens its database, and only then serves. The probe's
    triplet uses the reserved ``.invalid`` domain, so no test's greylisting is touched."""
    request = (
        b"request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
        b"client_address=127.0.0.1\nclient_name=localhost\nhelo_name=probe.invalid\n"
        b"sender=probe@probe.invalid\nrecipient=probe@probe.invalid\n\n"
    )
    try:
        with socket.create_connection((_LOOPBACK, port), timeout=2.0) as probe:
            probe.sendall(request)
            answer = b""
            while not answer.endswith(b"\n\n"):
                data = probe.recv(4096)
                if not data:
                    break
                answer += data
            return answer.startswith(b"action=")
    except OSError:
        return False


def _stop_group(
    process: subprocess.Popen[bytes],
    wake: Callable[[], object] | None = None,
    grace: float = _STOP_TIMEOUT,
) -> None:
    """SIGTERM the process group, wait a bounded time, then SIGKILL it. Postfix's master
    passes SIGTERM on to its daemons; SIGKILL of the group catches any it did not.

    ``wake`` pokes a server that only looks at its signals when its event loop wakes:
    postgrey (Net::Server::Multiplex) checks them after a socket event, so an idle one
    would sit out the whole ``grace``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    if wake is not None and process.poll() is None:
        wake()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(_STOP_TIMEOUT)


# ---- watching the wire ------------------------------------------------------------------------


class RecordingProxy:
    """A loopback TCP relay in front of an MX that records both directions, in the order
    it read them, per connection.

    It exists to prove PIPELINING from the outside: the proxy forwards a server reply only
    after recording it, so a client that waits for each reply cannot have its next command
    recorded before that reply. A command recorded first was sent ahead of time.
    """

    def __init__(self, upstream: Target) -> None:
        self.upstream = upstream
        self.port = 0
        #: One list per accepted connection of ("C" client bytes | "S" server bytes, data).
        self.connections: list[list[tuple[str, bytes]]] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    def target(self) -> Target:
        """The proxy as a target: the upstream's name (for SNI), the proxy's port."""
        return Target(self.upstream.host, _LOOPBACK, self.port)

    async def __aenter__(self) -> RecordingProxy:
        self._server = await asyncio.start_server(self._relay, _LOOPBACK, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop listening; give open relays a moment to see both EOFs, then abort their
        sockets (not cancel their tasks: asyncio logs a cancelled connection handler as an
        error), which ends them at once."""
        if self._server is not None:
            self._server.close()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2.0)
        for writer in self._writers:
            writer.transport.abort()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2.0)
        if self._server is not None:
            await self._server.wait_closed()

    async def _relay(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.append(client_out)
        record: list[tuple[str, bytes]] = []
        self.connections.append(record)
        try:
            server_in, server_out = await asyncio.wait_for(
                asyncio.open_connection(self.upstream.address, self.upstream.port), 5.0
            )
        except (OSError, TimeoutError):
            client_out.close()
            self._tasks.discard(task)
            return
        self._writers.append(server_out)
        try:
            await asyncio.gather(
                _copy(client_in, server_out, "C", record),
                _copy(server_in, client_out, "S", record),
            )
        finally:
            client_out.close()
            server_out.close()
            self._tasks.discard(task)


async def _copy(
    source: asyncio.StreamReader,
    sink: asyncio.StreamWriter,
    tag: str,
    record: list[tuple[str, bytes]],
) -> None:
    """Copy until EOF, recording each read before forwarding it; pass the EOF on."""
    with contextlib.suppress(OSError):
        while data := await source.read(65536):
            record.append((tag, data))
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()


# ---- comparing what was sent with what was stored -----------------------------------------


def split_prepended(stored: bytes) -> tuple[list[bytes], bytes]:
    """Split a stored message into the trace headers Postfix and postgrey put on top
    (Return-Path, X-Original-To, Delivered-To, X-Greylist, Received; each with its folded
    lines) and the message as the client sent it. A sent message must not itself start
    with one of those headers, or it is counted among them."""
    lines = stored.splitlines(keepends=True)
    headers: list[bytes] = []
    index = 0
    while index < len(lines):
        name = lines[index].split(b":", 1)[0].strip().lower()
        if b":" not in lines[index] or name not in PREPENDED_HEADERS:
            break
        header = lines[index]
        index += 1
        while index < len(lines) and lines[index][:1] in (b" ", b"\t"):
            header += lines[index]
            index += 1
        headers.append(header)
    return headers, b"".join(lines[index:])


def as_stored(sent: bytes) -> bytes:
    """``sent`` (CRLF line ends, as on the wire) as Postfix stores it: LF line ends. The
    only change Postfix makes below its trace headers, so a comparison after this is a
    byte-for-byte comparison of content."""
    return sent.replace(b"\r\n", b"\n")


def delivered_to(stored: bytes) -> bytes | None:
    """The recipient the virtual agent delivered ``stored`` to (its Delivered-To header)."""
    for header in split_prepended(stored)[0]:
        name, _, value = header.partition(b":")
        if name.lower() == b"delivered-to":
            return value.strip().lower()
    return None


def iter_header_names(stored: bytes) -> Iterator[str]:
    """Names of the trace headers on top of a stored message, in order."""
    for header in split_prepended(stored)[0]:
        yield header.split(b":", 1)[0].decode()
