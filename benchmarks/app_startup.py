"""How long the window takes to appear, and to answer its first search, from the moment it is launched.

    .venv/bin/python benchmarks/app_startup.py              # demo model, 5 launches, offscreen
    .venv/bin/python benchmarks/app_startup.py --runs 10

Each run launches the app's own entry point (`mkt_desktop.app.main`) in a fresh process on a
library of a few demo photos, and records, from the launch:

- `first_paint`: the main window's first paint (what a person sees appear);
- `first_search`: a search typed at that moment answered in the grid (the model loads behind
  the window, so this includes loading it).

Baselines in the same run: `interpreter` (`python -c pass`, the floor) and `training_stack_import`
(importing torch, torchvision, timm and open_clip, which the app did before the runtime stood on
its own). Prints one JSON object with medians and each run's numbers.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = r"""
import sys, time
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QMainWindow

launched = float(sys.argv[1])
app = QApplication(sys.argv[:1])
marks = {}

class Watch(QObject):
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint and "first_paint" not in marks and isinstance(obj, QMainWindow):
            marks["first_paint"] = time.time() - launched
            QTimer.singleShot(0, lambda: search(obj))
        return False

def search(window):
    def done(text):
        if text and "first_search" not in marks:
            marks["first_search"] = time.time() - launched
            print("MARKS " + repr(marks), flush=True)
            window.close()
            app.quit()
    window.search_finished.connect(done)
    window.search_box.setText("red star")
    window.run_search()

watch = Watch()
app.installEventFilter(watch)
QTimer.singleShot(120_000, app.quit)
from mkt_desktop.app import main
main(["--db", sys.argv[2], "--model", "demo", "--settings", sys.argv[3]])
"""


def launch_seconds(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, cwd=ROOT, capture_output=True)
    return time.perf_counter() - start


def one_run(db: Path, settings: Path) -> dict:
    from benchmarks.machine import installed_python_env

    env = installed_python_env(QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    launched = time.time()
    out = subprocess.run([sys.executable, "-c", CHILD, repr(launched), str(db), str(settings)], env=env,
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    line = next((line for line in out.stdout.splitlines() if line.startswith("MARKS ")), None)
    if line is None:
        raise RuntimeError(f"the app did not answer a search: {out.stderr[-2000:]}")
    return {key: round(value, 3) for key, value in eval(line[len("MARKS "):]).items()}  # noqa: S307 - our own child


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    from benchmarks.machine import machine_facts
    from mkt_core.synthetic.world import write_demo_photos
    from mkt_desktop.library import Library

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_demo_photos(tmp / "photos", count=20, seed=1)
        db = tmp / "library.sqlite"
        library = Library(db_path=db, model="demo")
        library.index([tmp / "photos"])
        settings = tmp / "settings.json"
        one_run(db, settings)  # warm-up, not counted: writes the byte-code cache an installed app has
        runs = [one_run(db, settings) for _ in range(args.runs)]
    interpreter = [launch_seconds(["-c", "pass"]) for _ in range(3)]
    stack = [launch_seconds(["-c", "import torch, torchvision, timm, open_clip"]) for _ in range(3)]
    return {
        "benchmark": "app_startup", "machine": machine_facts(), "runs": runs,
        "first_paint_median": round(statistics.median(r["first_paint"] for r in runs), 3),
        "first_search_median": round(statistics.median(r["first_search"] for r in runs), 3),
        "baselines": {"interpreter": round(statistics.median(interpreter), 3),
                      "training_stack_import": round(statistics.median(stack), 3)},
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
