"""`mkt-photo-tagger`: the desktop application's entry point."""

import argparse
import sys

from PySide6.QtWidgets import QApplication

from mkt_desktop.library.library import Library
from mkt_desktop.ui.main_window import MainWindow


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mkt-photo-tagger", description="Tag local photos with any words.")
    parser.add_argument("--db", help="the library database (default: in the user data folder)")
    parser.add_argument("--model", default="demo", help="'demo', a bundle folder, or clip:NAME/TAG")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Create the application, show the main window and run until it closes."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("MKT Photo Tagger")
    window = MainWindow(Library(db_path=args.db, model=args.model))
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
