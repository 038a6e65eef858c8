"""A short description of the machine a benchmark ran on, for RESULTS.md."""

from __future__ import annotations

import os
import platform
import sys


def describe() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as handle:
            kib = int(handle.readline().split()[1])
            mem = f", {kib / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{os.cpu_count()} vCPU ({cpu}){mem}, {platform.system()} {platform.release()}, "
        f"Python {sys.version.split()[0]}"
    )
