"""Hypothesis profiles for the fuzz tests.

``ci`` (the default) runs a few dozen examples per property, derandomized so a CI failure reproduces;
``long`` runs thousands with fresh randomness, for hunting:

    HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest tests/fuzz
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "long",
    max_examples=3000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
