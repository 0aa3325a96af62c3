#!/usr/bin/env bash
# Install Postfix and postgrey for tests/integration/test_postfix_interop.py, and Dovecot's
# IMAP server for tests/integration/test_bounces_imap.py, and make sure none runs
# system-wide: the tests start private instances (tests/integration/mta.py, imap.py) on
# free loopback ports, from their own temporary directories.
#
# Idempotent and non-interactive; needs root and Debian's apt (Debian 12 on CI). Postfix is
# preseeded to "No configuration", so the package writes no /etc/postfix/main.cf and its
# system service has nothing to start; Dovecot's service is stopped and disabled. Exits
# non-zero, saying why, on any failure.
set -euo pipefail

PACKAGES=(postfix postgrey dovecot-imapd)

NAME=install-mta
# shellcheck source=.ci/apt.sh
source "$(dirname "$0")/apt.sh"
command -v debconf-set-selections >/dev/null || die "needs debconf-set-selections"

if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections \
        || die "could not preseed postfix"
    # Keep maintainer scripts from starting the services while installing (exit 101:
    # "action forbidden" to invoke-rc.d), unless the machine already has such a policy.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
else
    say "already installed: ${PACKAGES[*]}"
fi

# Stop whatever the packages (or an earlier run) started, and keep it from starting at
# boot: a system postgrey would hold 127.0.0.1:10023, a system Postfix port 25.
# A system Dovecot would hold ports 143 and 993.
for service in postgrey postfix dovecot; do
    if [ -d /run/systemd/system ]; then
        systemctl disable --now "$service" >/dev/null 2>&1 || true
    else
        service "$service" stop >/dev/null 2>&1 || true
        update-rc.d "$service" disable >/dev/null 2>&1 || true
    fi
done
# Debian's init script and unit run postgrey with this pid file; anything left is a
# daemon the stop above did not reach.
if [ -s /run/postgrey.pid ] && kill -0 "$(cat /run/postgrey.pid)" 2>/dev/null; then
    kill "$(cat /run/postgrey.pid)" || die "could not stop the system postgrey"
fi

# What the tests need, checked here so that a broken install fails now, not as a test.
for program in /usr/sbin/postfix /usr/sbin/postconf /usr/sbin/postgrey /usr/sbin/dovecot; do
    [ -x "$program" ] || die "$program missing after the install"
done
for user in postfix postgrey dovecot dovenull; do
    getent passwd "$user" >/dev/null || die "user $user missing after the install"
done
getent group postdrop >/dev/null || die "group postdrop missing after the install"
version=$(postconf -d -h mail_version) || die "postconf does not run"
# maillog_file and postlogd (3.4), smtpd_forbid_unauth_pipelining (3.7.9).
dpkg --compare-versions "$version" ge 3.7.9 \
    || die "Postfix $version is too old: the tests need 3.7.9 or later"
say "ready: Postfix $version, $(/usr/sbin/postgrey --version), Dovecot $(/usr/sbin/dovecot --version)"
