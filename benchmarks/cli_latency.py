"""How long a `mkt-desktop` command that only reads the library takes, start to finish, as a person runs it.

    .venv/bin/python benchmarks/cli_latency.py                 # 60 demo photos, 5 runs of each command
    .venv/bin/python benchmarks/cli_latency.py --photos 500 --repeats 9

Builds a library in a temporary folder (demo photos indexed with the demo model, three saved labels), then
runs each command (a saved label's search reads its score column; typed words need the text encoder)
as a fresh process (`python -m mkt_desktop.cli ...`, the interpreter's start-up included)
`--repeats` times and prints one JSON object:

- `commands`: per command, the median and the best wall-clock seconds, and which heavy modules it imported
  (torch, onnxruntime, open_clip, timm, PySide6): a read-only command should load no model at all.
- `baseline`: the same measure of `python -c pass` (the interpreter alone) and of importing numpy and
  SQLAlchemy (what any command needs), in the same run, so a loaded machine shows as a slower baseline.
- `target_seconds`: 1.0, the aim for these commands on an idle machine (issue 16); compare on the same machine.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import installed_python_env, machine_facts  # noqa: E402

HEAVY = ("torch", "onnxruntime", "open_clip", "timm", "PySide6")
TARGET_SECONDS = 1.0
# The command as `mkt-desktop` runs it (its quick os._exit included), telling which heavy modules it loaded.
PROBE = ("import os, runpy, sys\n"
         "def report():\n"
         "    print('HEAVY=' + ','.join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr, flush=True)\n"
         "quick_exit = os._exit\n"
         "os._exit = lambda rc: (report(), quick_exit(rc))\n"
         "sys.argv = ['mkt-desktop'] + sys.argv[1:]\n"
         "try:\n"
         "    runpy.run_module('mkt_desktop.cli', run_name='__main__')\n"
         "except SystemExit:\n"
         "    report()\n")


def timed(command: list[str], env: dict) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-1000:]}")
    heavy = next((line[len("HEAVY="):] for line in done.stderr.splitlines() if line.startswith("HEAVY=")), "")
    return seconds, heavy


def measure(command: list[str], env: dict, repeats: int) -> dict:
    timed(command, env)  # warm-up, not counted: writes the byte-code cache an installed app has
    runs = [timed(command, env) for _ in range(repeats)]
    seconds = [s for s, _ in runs]
    heavy = runs[-1][1]
    return {"median_seconds": round(statistics.median(seconds), 3), "best_seconds": round(min(seconds), 3),
            "heavy_modules": heavy.split(",") if heavy else []}


def build_library(folder: Path, photos: int) -> Path:
    from mkt_core.synthetic.world import WorldSpec, write_demo_photos
    from mkt_desktop.library.library import Library

    write_demo_photos(folder / "photos", photos, seed=3, world=WorldSpec(image_size=96))
    db = folder / "library.sqlite"
    lib = Library(db_path=db, model="demo")
    lib.index([folder / "photos"])
    for label in ("red star", "blue moon", "green heart"):
        lib.add_label(label)
    return db


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    env = installed_python_env(PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    with tempfile.TemporaryDirectory() as tmp:
        db = build_library(Path(tmp), args.photos)
        common = ["--db", str(db), "--model", "demo"]
        probe = [sys.executable, "-c", PROBE.format(heavy=HEAVY)]
        commands = {
            "labels list": ["labels", "list", *common],
            "failures": ["failures", *common],
            "photos --sort newest": ["photos", "--sort", "newest", *common],
            "search a saved label": ["search", "red star", "--limit", "10", *common],
            "search typed words (the demo model)": ["search", "a purple ring on grey", "--limit", "10", *common],
        }
        baseline = {
            "python -c pass": measure([sys.executable, "-c", "pass"], env, args.repeats),
            "import numpy, sqlalchemy": measure([sys.executable, "-c", "import numpy, sqlalchemy"], env, args.repeats),
        }
        results = {name: measure(probe + argv, env, args.repeats) for name, argv in commands.items()}
    for result in results.values():
        result["within_target"] = result["median_seconds"] <= TARGET_SECONDS
    print(json.dumps({"benchmark": "cli_latency", "machine": machine_facts(), "photos": args.photos,
                      "repeats": args.repeats, "target_seconds": TARGET_SECONDS, "baseline": baseline,
                      "commands": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
