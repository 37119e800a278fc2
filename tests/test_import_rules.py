"""The package rules that keep the app light and the layers apart, checked on the real imports."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAINING_STACK = ("torch", "torchvision", "timm", "open_clip", "h5py", "transformers")


def _loaded_after_import(module: str) -> list[str]:
    code = (f"import sys; import {module}; "
            f"print(' '.join(m for m in {TRAINING_STACK!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return out.stdout.split()


def test_the_app_and_the_runtime_start_without_the_training_stack():
    for module in ("mkt_desktop.app", "mkt_desktop.cli", "mkt_desktop.library", "mkt_core.runtime.engine",
                   "mkt_core.runtime.store", "mkt_core.runtime.bundle", "mkt_core.runtime.image_pipeline",
                   "mkt_core.runtime.tokenizer", "mkt_core.runtime.hf_tokenizer"):
        assert _loaded_after_import(module) == [], module


def _module_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _all_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _top(names: set[str]) -> set[str]:
    return {name.split(".")[0] for name in names}


def test_mkt_core_imports_no_qt_and_no_sql():
    for path in (ROOT / "mkt_core").rglob("*.py"):
        assert not _top(_all_imports(path)) & {"PySide6", "sqlalchemy", "sqlite3"}, path


def test_the_ui_never_imports_mkt_core():
    for path in (ROOT / "mkt_desktop" / "ui").rglob("*.py"):
        assert "mkt_core" not in _top(_all_imports(path)), path


def test_the_runtime_imports_no_torch_and_no_training_code_at_module_level():
    for path in (ROOT / "mkt_core" / "runtime").rglob("*.py"):
        names = _module_level_imports(path)
        assert not _top(names) & set(TRAINING_STACK), path
        assert not {n for n in names if n.startswith(("mkt_core.model", "mkt_core.train", "mkt_core.data"))}, path
