"""How hard the fuzz tests try, chosen by the environment.

The fuzz tests carry their own settings instead of the suite's ``HYPOTHESIS_PROFILE``: a
long fuzz run must not make every other property test long, and the short run must stay a
few seconds in all even when the suite itself runs its long profile.

* default: ``SHORT_EXAMPLES`` examples a test (the whole of ``tests/fuzz`` in seconds);
* ``MXMAILER_FUZZ=long``: ``LONG_EXAMPLES`` a test (``make fuzz``);
* ``MXMAILER_FUZZ_EXAMPLES=N``: N a test, for a run as long as one has time for.

Failing examples are kept in hypothesis's database (``.hypothesis/``) and replayed first on
the next run, so a long run's finding is reproduced by the short one on the same machine.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

SHORT_EXAMPLES = 60
LONG_EXAMPLES = 20_000


def examples() -> int:
    """The examples per test that the environment asks for."""
    explicit = os.environ.get("MXMAILER_FUZZ_EXAMPLES")
    if explicit:
        return max(1, int(explicit))
    return LONG_EXAMPLES if os.environ.get("MXMAILER_FUZZ") == "long" else SHORT_EXAMPLES


#: The settings every fuzz test is decorated with.
FUZZ = settings(
    max_examples=examples(),
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)

#: pytest-timeout's limit for one fuzz test (each module's ``pytestmark``): the suite's
#: 120 s suits one ordinary test, while a long run's slowest fuzz test takes about 15 ms
#: an example (75 s for 5,000 on two shared cores); 50 ms an example leaves room.
TIMEOUT = pytest.mark.timeout(max(120, examples() // 20))
