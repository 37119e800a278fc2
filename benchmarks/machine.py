"""The machine's facts that every benchmark prints beside its numbers."""

import os
import platform
from pathlib import Path


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
