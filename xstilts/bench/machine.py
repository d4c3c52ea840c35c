"""The machine the bench figures come from, recorded in ``results.json``."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from xstilts import __version__
from xstilts.contracts.results import Machine


def machine_info() -> Machine:
    """The machine the figures come from (shared machines: the load average says how busy it was)."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    memory = None
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = round(int(line.split()[1]) / 1024 / 1024, 1)
    versions = {}
    for name in ("onnxruntime", "onnxruntime-gpu", "tokenizers", "locust", "torch", "transformers", "fastapi"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return Machine(
        cpu=cpu,
        cores=os.cpu_count(),
        usable_cores=usable,
        memory_gb=memory,
        platform=platform.platform(),
        python=platform.python_version(),
        load_average=[round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        versions=versions,
        xstilts=__version__,
    )
