"""`mkt-photo-tagger`: the desktop application's entry point."""

import argparse
import sys
from pathlib import Path

from PySide6.QtWidgets import QApplication

from mkt_desktop.library import Library
from mkt_desktop.paths import default_settings_path
from mkt_desktop.settings import load_settings
from mkt_desktop.ui.main_window import MainWindow


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mkt-photo-tagger", description="Tag local photos with any words.")
    parser.add_argument("--db", help="the library database (default: the settings', else in the user data folder)")
    parser.add_argument("--model", help="'demo', a bundle folder, or clip:NAME/TAG (default: the settings', "
                                        "else demo)")
    parser.add_argument("--settings", help="the settings file (default: settings.json in the user config folder)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Create the application, show the main window and run until it closes."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    settings_path = Path(args.settings) if args.settings else default_settings_path()
    settings, problem = load_settings(settings_path)
    if problem:
        print(problem, file=sys.stderr)
    model = args.model or settings.model
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("MKT Photo Tagger")
    library = Library(db_path=args.db or settings.database or None, model=model,
                      engine_options=settings.engine_options)
    window = MainWindow(library, settings=settings, settings_path=settings_path)
    if problem:
        window.statusBar().showMessage(problem, 15000)
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
