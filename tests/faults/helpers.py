"""Real files, real databases and the real command line for the fault tests."""

import contextlib
import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
KILLER = Path(__file__).with_name("killer.py")
KILLED = -9


def photo(path: Path, seed: int, fmt: str | None = None) -> Path:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)
    pixels[:, : 8 * (seed % 7 + 1)] = (seed * 37) % 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)
    return path


def photos(folder: Path, count: int, start: int = 0) -> list[Path]:
    return [photo(folder / f"p{i:03d}.jpg", i) for i in range(start, start + count)]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}


def cli(*args: str) -> subprocess.CompletedProcess:
    """`mkt-desktop ARGS`, in this process (a process of its own costs seconds of imports): the exit
    code, stdout and stderr as subprocess.run gives them."""
    from mkt_desktop.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(["mkt-desktop", *args], code, out.getvalue(), err.getvalue())


def cli_process(*args: str) -> subprocess.CompletedProcess:
    """`mkt-desktop ARGS` in a process of its own (the code of this checkout)."""
    return subprocess.run([sys.executable, "-m", "mkt_desktop.cli", *args], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=600)


def cli_processes_at_once(count: int, *args: str) -> list[subprocess.CompletedProcess]:
    """`mkt-desktop ARGS` in `count` processes started together."""
    command = [sys.executable, "-m", "mkt_desktop.cli", *args]
    running = [subprocess.Popen(command, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(count)]
    done = []
    for process in running:
        out, err = process.communicate(timeout=600)
        done.append(subprocess.CompletedProcess(command, process.returncode, out, err))
    return done


def killed_cli(step: str, count: int, *args: str) -> subprocess.CompletedProcess:
    """`mkt-desktop ARGS` in a process of its own, killed with SIGKILL at its `count`-th `step` (see killer.py);
    returncode is KILLED if it was."""
    return subprocess.run([sys.executable, str(KILLER), step, str(count), *args], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=600)


def strict_json(text: str):
    """json.loads that refuses NaN and Infinity, which are not JSON."""
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def sql(db: Path, query: str, *params) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(query, params).fetchall()


def _fresh_library(db: Path, model: str):
    from mkt_desktop.library.library import Library

    return Library(db_path=db, model=model, vocabulary=False)  # as another process opens it


def label_score_counts(db: Path, model: str) -> dict[str, int]:
    """How many indexed photos each saved label has a finite score for, as a new process sees them."""
    lib = _fresh_library(db, model)
    texts = lib.vocabulary_labels()
    _, columns = lib.label_scores(texts)
    return {text: 0 if column is None else int(np.isfinite(column).sum())
            for text, column in zip(texts, columns, strict=True)}


def scores_by_path(db: Path, model: str) -> dict[tuple[str, str], float]:
    """{(photo file name, label): score} of every indexed photo and saved label."""
    lib = _fresh_library(db, model)
    texts = lib.vocabulary_labels()
    snapshot, columns = lib.label_scores(texts)
    names = {photo_id: Path(path).name for photo_id, path in lib.photos()}
    return {(names[int(photo_id)], text): float(column[i]) for text, column in zip(texts, columns, strict=True)
            for i, photo_id in enumerate(snapshot.photo_ids)}

