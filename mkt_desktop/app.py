"""`mkt-photo-tagger`: the desktop application's entry point."""

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from PySide6.QtWidgets import QApplication, QFileDialog

from mkt_desktop.library import DatabaseError, Library
from mkt_desktop.paths import default_settings_path
from mkt_desktop.settings import Settings, load_settings
from mkt_desktop.ui import dialogs
from mkt_desktop.ui.main_window import MainWindow


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mkt-photo-tagger", description="Tag local photos with any words.")
    parser.add_argument("--db", help="the library database (default: the settings', else in the user data folder)")
    parser.add_argument("--model", help="'demo', a bundle folder, clip:NAME/TAG or clip:NAME/PATH to a local "
                                        "weights file (default: the settings', else demo)")
    parser.add_argument("--settings", help="the settings file (default: settings.json in the user config folder)")
    return parser.parse_args(argv)


def open_library(db: str | None, settings: Settings, settings_path: Path, from_settings: bool) -> Library | None:
    """The library, or — when its database cannot be opened — a dialog that names it and offers another one or
    the default one (kept in the settings when the bad one came from there); None if the person quits."""
    while True:
        try:
            return Library(db_path=db, model=settings.model, **settings.library_options)
        except DatabaseError as exc:
            dialog = dialogs.database_problem(None, str(exc), at_start=True)
            dialog.exec()
            if dialog.choice == dialogs.OTHER_DATABASE:
                path, _ = QFileDialog.getSaveFileName(None, "Library database", str(Path.home() / "library.sqlite"),
                                                      "SQLite database (*.sqlite);;All files (*)",
                                                      options=QFileDialog.Option.DontConfirmOverwrite)
                if not path:
                    continue
                db = path
            elif dialog.choice == dialogs.DEFAULT_DATABASE:
                db = None
            else:
                return None
            if from_settings:
                settings.database = db or ""
                try:
                    settings.save(settings_path)
                except OSError as save_error:
                    print(f"{settings_path}: settings not saved: {save_error}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Create the application, show the main window and run until it closes."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    settings_path = Path(args.settings) if args.settings else default_settings_path()
    settings, problem = load_settings(settings_path)
    if problem:
        print(problem, file=sys.stderr)
    if args.model:
        settings = replace(settings, model=args.model)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("MKT Photo Tagger")
    library = open_library(args.db or settings.database or None, settings, settings_path,
                           from_settings=not args.db)
    if library is None:
        return 1
    window = MainWindow(library, settings=settings, settings_path=settings_path)
    if problem:
        window.say(problem, 15000)
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
