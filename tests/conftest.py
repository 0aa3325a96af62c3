"""Shared test configuration. Keep each concern in its own section."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# ---- hypothesis profiles --------------------------------------------------------------
# "fast" keeps the whole unit suite well under a minute on two cores; select the thorough
# run with HYPOTHESIS_PROFILE=long (or pytest's --hypothesis-profile=long).
settings.register_profile(
    "fast",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "long",
    max_examples=5000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))
