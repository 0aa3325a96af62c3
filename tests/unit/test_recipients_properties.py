"""Properties of the address check that must hold for every input.

1. The fast path for ordinary addresses gives exactly what email-validator gives, or
   steps aside: it never accepts what email-validator refuses, nor normalises differently.
2. Whatever a cell holds, a valid address never carries CR, LF or NUL, its domain is a
   lower-case A-label with a dot, and checking its normalised form again changes nothing.
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from core.recipients import Address, check_address, full_address_check, ordinary_address

ATEXT = "abcXYZ0189!#$%&'*+/=?^_`{|}~-"
TLDS = ["test", "com", "COM", "de", "local", "localhost", "invalid", "onion", "arpa", "123", "x1"]
RFC2142 = ["info", "INFO", "Sales", "postmaster", "abuse", "news", "www", "ftp"]


def mostly(common: st.SearchStrategy[str], *rare: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """``common`` seven times in ten, else one of ``rare``."""
    return st.integers(0, 9).flatmap(lambda n: common if n < 7 else rare[n % len(rare)])


# Mostly well-formed, so that the fast path is taken often; sometimes at a limit or broken.
atom = st.text(alphabet=ATEXT, min_size=1, max_size=10)
dot_atom = st.lists(atom, min_size=1, max_size=4).map(".".join)
good_label = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?", fullmatch=True)
label = mostly(
    good_label,
    st.text(alphabet="ab", min_size=60, max_size=66),  # around the 63-octet limit
    st.text(alphabet="abcXYZ019-", max_size=6),  # empty, leading or trailing hyphen
    st.sampled_from(["xn--bcher-kva", "XN--TDAA", "xn--zz", "xn--", "ab--cd"]),
)
domain = st.builds(
    lambda labels, tld: ".".join([*labels, tld]),
    st.lists(label, min_size=1, max_size=4),
    mostly(st.from_regex(r"[a-zA-Z]{2,6}", fullmatch=True), st.sampled_from(TLDS)),
)
local = mostly(
    dot_atom,
    st.sampled_from(RFC2142),
    st.text(alphabet="ab.", min_size=60, max_size=70),  # around the 64-octet limit
    st.text(alphabet=ATEXT + '. "@<>\\\u00e9', max_size=8),  # not ordinary
)
address = mostly(
    st.builds(lambda lp, dp: f"{lp}@{dp}", local, domain),
    st.builds(lambda lp, dp: f"{lp}@@{dp}", local, domain),
    st.builds(lambda lp, dp: f"{lp}{dp}", local, domain),
)


def test_ordinary_addresses_take_the_fast_path() -> None:
    """Else the property below proves nothing: the fast path must be used."""
    for text in ["user1@plain.test", "A.B+tag@Mail.Example.COM", "x_y-z@d123.example.test"]:
        assert ordinary_address(text) is not None, text
        assert ordinary_address(text) == full_address_check(text)


@given(address)
@example("Info@x.test")  # email-validator lower-cases RFC 2142 names
@example("a@x.xn--zz")  # a false A-label
@example("a@" + "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".test")
@example("a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 58 + ".test")
def test_the_fast_path_agrees_with_email_validator(text: str) -> None:
    fast = ordinary_address(text)
    if fast is not None:
        assert fast == full_address_check(text)


@given(st.one_of(address, st.text(), st.builds(lambda n, a: f"{n} <{a}>", st.text(), address)))
@example("Ann <a@x.test>\r\n")
@example("a@b\u00fccher.test.")
def test_a_valid_address_is_safe_and_stable(text: str) -> None:
    checked = check_address(text)
    if isinstance(checked, str):
        assert checked  # a reason, never an empty one
        return
    assert not any(ch in checked.email for ch in "\r\n\0")
    assert checked.domain.isascii()
    assert checked.domain == checked.domain.lower()
    assert "." in checked.domain
    assert len(checked.local.encode()) <= 64
    again = check_address(checked.email)
    assert isinstance(again, Address)
    assert (again.email, again.domain, again.key) == (checked.email, checked.domain, checked.key)
