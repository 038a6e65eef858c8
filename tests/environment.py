"""The environment a test hands to a ``tenantry`` process it starts."""

from __future__ import annotations

import os


def without_settings(**extra: str) -> dict[str, str]:
    """This process's environment minus every ``TENANTRY_*`` setting, plus ``extra``.

    A developer's own settings must not leak into the processes a test starts.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTRY_")}
    env.update(extra)
    return env
