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
    import numpy
    import onnxruntime
    import torch

    from mkt_core.runtime.engine import cpu_count

    cores = cpu_count()
    return {"cores": cores, "cpu_model": cpu_model(), "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__, "numpy": numpy.__version__,
            "cuda_available_to_torch": torch.cuda.is_available(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
