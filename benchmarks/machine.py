"""The machine's facts that every benchmark prints beside its numbers."""

import os
import platform
from pathlib import Path


def installed_python_env(**changes: str) -> dict[str, str]:
    """The environment for a child process timed as a person runs it: with Python's byte-code cache,
    as an installed app has (a sandbox's PYTHONDONTWRITEBYTECODE recompiles every module on each
    launch, a quarter of a second here). Time a warm-up launch first so the cache exists."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    return {**env, **changes}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts() -> dict:
    """Cores, CPU, library versions, GPU and load. torch is asked about only when the benchmark has
    imported it already: importing it here would add a gigabyte to the peak memory measured."""
    import sys
    from importlib.metadata import PackageNotFoundError, version

    import numpy
    import onnxruntime

    from mkt_core.runtime.engine import cpu_count

    try:
        torch_version = version("torch")
    except PackageNotFoundError:
        torch_version = None
    torch = sys.modules.get("torch")
    cuda = bool(torch and torch.cuda.is_available())
    return {"cores": cpu_count(), "cpu_model": cpu_model(), "torch": torch_version,
            "onnxruntime": onnxruntime.__version__, "numpy": numpy.__version__,
            "cuda_available_to_torch": cuda if torch else "not checked (torch not imported)",
            "gpu": torch.cuda.get_device_name() if cuda else None,
            "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
