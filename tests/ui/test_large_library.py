"""A library of 100,000 photos in the window: opening a photo and refreshing the labels panel run off
the UI thread and answer with the library's fast paths (what each costs: benchmarks/library_scale.py)."""

import numpy as np
import pytest
from sqlalchemy import insert

from mkt_desktop.library.db import Embedding, Photo, utcnow
from mkt_desktop.library.library import Library
from tests.ui.helpers import WAIT_MS, UiThreadAnswer, open_window, wait_idle

PHOTOS = 100_000


def build_large_library(db, model: str, photos: int, folder) -> None:
    """`photos` indexed photos, written as an index run leaves them (photo and embedding rows, the
    store's rows) but with generated unit-norm embeddings: indexing 100,000 files takes too long here."""
    lib = Library(db_path=db, model=model, vocabulary=False)
    store = lib.store
    rng = np.random.default_rng(0)
    now = utcnow()
    with lib.Session() as session:
        session.execute(insert(Embedding), [{"id": i + 1, "model_id": lib.model_id, "content_hash": f"{i:064x}"}
                                            for i in range(photos)])
        session.execute(insert(Photo), [{"path": str(folder / f"p{i:06d}.jpg"), "size": 1000 + i, "mtime_ns": i,
                                         "content_hash": f"{i:064x}", "status": "ok", "indexed": now}
                                        for i in range(photos)])
        session.commit()
    for start in range(0, photos, 10_000):
        n = min(10_000, photos - start)
        g = rng.standard_normal((n, store.embed_dim)).astype(np.float32)
        local = rng.standard_normal((n, store.num_patches, store.embed_dim)).astype(np.float32)
        store.append(np.arange(start + 1, start + n + 1), g / np.linalg.norm(g, axis=1, keepdims=True),
                     local / np.linalg.norm(local, axis=2, keepdims=True))
    for text in ("red star", "blue moon", "a dog"):
        lib.add_label(text)


@pytest.mark.slow
def test_opening_a_photo_and_the_labels_panel_never_block_the_ui_thread(qtbot, tmp_path, tiny_bundle):
    db = tmp_path / "lib.sqlite"
    build_large_library(db, tiny_bundle, PHOTOS, tmp_path / "photos")
    window = open_window(qtbot, db, tiny_bundle)
    wait_idle(qtbot, window)
    assert window.library.photo_count() == PHOTOS
    ui = UiThreadAnswer()
    library = window.library
    library.photo_labels = ui.off_the_ui_thread(library.photo_labels)
    library.labels = ui.off_the_ui_thread(library.labels)

    with qtbot.waitSignal(window.photo_view.labels_shown, timeout=WAIT_MS):
        window.grid.setCurrentIndex(window.photo_model.index(0))
    assert [label.label for label in window.photo_view.labels]  # the photo's labels with scores
    with qtbot.waitSignal(window.labels_refreshed, timeout=WAIT_MS):
        window.refresh_labels()
    assert sorted(window.label_texts()) == ["a dog", "blue moon", "red star"]
    wait_idle(qtbot, window)

    names = {name for name, _, _ in ui.calls}
    assert {"photo_labels", "labels"} <= names, ui.calls
    assert all(off_ui and answered for _, off_ui, answered in ui.calls), ui.calls
    window.close()
