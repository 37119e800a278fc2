"""MKT Photo Tagger, the desktop application: `library` (headless) and `ui` (a thin Qt skin)."""
