# Shared by the .ci/install-*.sh scripts (sourced, not run): messages, the root and apt
# checks, and which of PACKAGES are missing. The sourcing script sets NAME and PACKAGES.

say() { echo "$NAME: $*"; }
die() {
    echo "$NAME: error: $*" >&2
    exit 1
}

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages with apt-get)"
command -v apt-get >/dev/null || die "needs apt-get (Debian or Ubuntu)"

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

# missing: the PACKAGES not installed yet.
missing=()
for package in "${PACKAGES[@]}"; do
    installed "$package" || missing+=("$package")
done
