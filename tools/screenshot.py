"""Take the README's screenshots: the app on the demo model after indexing demo photos and typing a label,
the first run (an empty library), the dialog a model that cannot be loaded opens, and the Settings dialog's
model list.

    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python tools/screenshot.py docs/screenshots/demo-model.png
    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python tools/screenshot.py docs/screenshots/first-run.png \
        --scene first-run
    HF_HUB_OFFLINE=1 xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python tools/screenshot.py \
        docs/screenshots/model-error.png --scene model-error    # clip:ViT-B-16/openai offline, not in the cache
    QT_QPA_PLATFORM=offscreen .venv/bin/python tools/screenshot.py docs/screenshots/grid-marks.png --scene grid-marks
    QT_QPA_PLATFORM=offscreen .venv/bin/python tools/screenshot.py docs/screenshots/settings-models.png \
        --scene settings-models

Needs Debian's xvfb, xauth, libxcb-icccm4, libxcb-keysyms1, libxcb-cursor0 and imagemagick (for `import`).

Everything happens in a temporary folder (demo photos, library database); the real window is shown on
the X display (Xvfb) and the screen is grabbed, so the picture is what a person would see.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtWidgets import QApplication

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mkt_core.synthetic.world import WorldSpec, write_demo_photos  # noqa: E402
from mkt_desktop.library import Library  # noqa: E402
from mkt_desktop.ui.main_window import MainWindow  # noqa: E402

LABEL = "red star"


def wait_until(app: QApplication, condition, seconds: float = 120) -> None:
    loop_ms, waited = 50, 0.0
    while not condition():
        if waited > seconds:
            raise TimeoutError("the window did not get there in time")
        loop = QEventLoop()
        QTimer.singleShot(loop_ms, loop.quit)
        loop.exec()
        waited += loop_ms / 1000


def grab_screen(window: MainWindow, out: str) -> None:
    """The X screen as it is (ImageMagick's `import`), else the window as Qt renders it."""
    if shutil.which("import") and os.environ.get("DISPLAY"):
        subprocess.run(["import", "-window", "root", out], check=True)
    else:
        window.grab().save(out)


def first_run(app: QApplication, out: str, model: str) -> int:
    """A new library: the empty grid's guide, or the dialog of a model that cannot be loaded."""
    with tempfile.TemporaryDirectory() as tmp:
        window = MainWindow(Library(db_path=Path(tmp) / "library.sqlite", model=model))
        window.resize(1280, 780)
        window.show()
        if model == "demo":
            wait_until(app, lambda: not window.runner.busy() and window.note.isVisible())
        else:
            shown = []
            window.problem_shown.connect(shown.append)
            wait_until(app, lambda: shown and not window.runner.busy())

        def grab_and_quit() -> None:
            grab_screen(window, out)
            app.quit()

        QTimer.singleShot(1500, grab_and_quit)
        app.exec()
        window.close()
    print(f"wrote {out}")
    return 0


def grid_marks(app: QApplication, out: str, label: str = "cyan star") -> int:
    """The grid's marks: one photo above the threshold rejected (✗, red border), one below it accepted (✓, green)."""
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "demo-photos"
        write_demo_photos(photos, count=48, seed=3, world=WorldSpec(image_size=160))
        library = Library(db_path=Path(tmp) / "library.sqlite", model="demo")
        library.add_folder(photos)
        library.index()
        library.add_label(label)
        hits = library.search(label, limit=100).hits
        above = [hit for hit in hits if hit.confidence >= 0.5]
        below = [hit for hit in hits if hit.confidence < 0.5]
        library.decide([above[min(1, len(above) - 1)].photo_id], label, "rejected")
        library.decide([below[0].photo_id], label, "accepted")
        window = MainWindow(library)
        window.resize(1280, 760)
        window.show()
        wait_until(app, lambda: not window.runner.busy() and label in window.label_texts())
        window.label_list.setCurrentRow(window.label_texts().index(label))
        searched = []
        window.search_finished.connect(searched.append)
        window.search_box.setText(label)
        wait_until(app, lambda: label in searched and not window.runner.busy())
        window.grid.setCurrentIndex(window.photo_model.index(1))
        wait_until(app, lambda: all(window.photo_model.has_thumbnail(i.path) for i in window.photo_model.items[:9]))
        window.photo_view.wait()
        wait_until(app, lambda: not window.runner.busy())
        QTimer.singleShot(1500, lambda: (window.grab().save(out), app.quit()))
        app.exec()
        window.close()
    print(f"wrote {out}")
    return 0


def settings_models(app: QApplication, out: str) -> int:
    """The Settings dialog's model list on a new library: the demo's speed measured, a CLIP model selected."""
    with tempfile.TemporaryDirectory() as tmp:
        window = MainWindow(Library(db_path=Path(tmp) / "library.sqlite", model="demo"))
        window.show()
        wait_until(app, lambda: not window.runner.busy())
        dialog = window.open_settings()
        wait_until(app, lambda: not window.models_runner.busy() and dialog.chooser.entries())
        dialog.chooser.measure_speeds()
        wait_until(app, lambda: not window.models_runner.busy())
        dialog.chooser.select("clip:ViT-B-16/openai")
        dialog.chooser.list.scrollToTop()
        QTimer.singleShot(500, lambda: (dialog.grab().save(out), app.quit()))
        app.exec()
        window.close()
    print(f"wrote {out}")
    return 0


def main(out: str, scene: str = "demo") -> int:
    app = QApplication(sys.argv[:1])
    if scene == "settings-models":
        return settings_models(app, out)
    if scene == "grid-marks":
        return grid_marks(app, out)
    if scene == "first-run":
        return first_run(app, out, "demo")
    if scene == "model-error":
        return first_run(app, out, "clip:ViT-B-16/openai")
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "demo-photos"
        write_demo_photos(photos, count=60, seed=7, world=WorldSpec(image_size=160))
        window = MainWindow(Library(db_path=Path(tmp) / "library.sqlite", model="demo"))
        window.resize(1280, 780)
        window.show()
        finished = []
        window.indexing_finished.connect(finished.append)
        window.add_folder(str(photos))
        wait_until(app, lambda: finished and not window.runner.busy())
        searched = []
        window.search_finished.connect(searched.append)
        window.search_box.setText(LABEL)
        wait_until(app, lambda: LABEL in searched and not window.runner.busy())
        window.save_label()  # Enter: the typed words become a saved label
        wait_until(app, lambda: LABEL in window.label_texts() and not window.runner.busy())
        window.grid.setCurrentIndex(window.photo_model.index(0))
        wait_until(app, lambda: all(window.photo_model.has_thumbnail(i.path) for i in window.photo_model.items[:6]))
        window.photo_view.wait()
        wait_until(app, lambda: not window.runner.busy())
        def grab_and_quit() -> None:
            grab_screen(window, out)
            app.quit()

        QTimer.singleShot(1500, grab_and_quit)  # grabbed while the event loop runs and the window is drawn
        app.exec()
        window.close()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Take a screenshot of the window under X (Xvfb).")
    parser.add_argument("out", nargs="?", default="screenshot.png")
    parser.add_argument("--scene", default="demo", choices=("demo", "first-run", "model-error", "grid-marks",
                                                            "settings-models"))
    arguments = parser.parse_args()
    sys.exit(main(arguments.out, arguments.scene))
