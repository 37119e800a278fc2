"""One score: a photo's score for a label is the same number in search, the photo view, the label's
count, the threshold stars and the export, whichever way the photo came in."""

import shutil

import pytest

from mkt_core.synthetic.world import write_demo_photos, write_off_world_photos
from mkt_desktop.library.library import Library


def _every_score_shown(lib: Library, label: str) -> tuple[dict[int, float], dict[int, float], float]:
    hits, threshold = lib.search(label, limit=10_000)
    searched = {h.photo_id: h.score for h in hits}
    viewed = {}
    for photo_id in searched:
        shown = {pl.label.casefold(): pl.score for pl in lib.photo_labels(photo_id, limit=10_000)}
        viewed[photo_id] = shown[label.casefold()]
    return searched, viewed, threshold


def _check_one_score(lib: Library, label: str) -> None:
    searched, viewed, threshold = _every_score_shown(lib, label)
    assert searched and searched.keys() == viewed.keys()
    worst = max(abs(searched[p] - viewed[p]) for p in searched)
    assert worst <= 1e-4, f"{label}: search and photo view differ by {worst}"
    info = next(i for i in lib.labels(source=None) if i.text.casefold() == label.casefold())
    assert info.effective_threshold == pytest.approx(threshold, abs=1e-4)
    above = sum(score >= info.effective_threshold for score in searched.values())
    assert info.above_threshold == above
    if info.source != "user":
        return  # only saved labels are exported
    exported = {path for path, labels in lib.photo_tags().items()
                if any(pl.label.casefold() == label.casefold() and pl.status == "auto" for pl in labels)}
    starred = {lib.photo_id(p) for p in exported}
    assert starred == {p for p, s in searched.items() if s >= info.effective_threshold}


def test_a_score_is_one_number_wherever_it_is_shown(tmp_path):
    photos = tmp_path / "photos"
    write_off_world_photos(photos / "ordinary", 17)  # the first batch is unlike the rest
    write_demo_photos(photos / "scenes", count=10, seed=3)
    lib = Library(db_path=tmp_path / "db" / "library.sqlite", model="demo", engine_options={"batch_size": 16})
    lib.add_folder(photos)
    report = lib.index()
    assert report.indexed == 27 and not report.failed
    for label in ("white ring", "red star", "purple circle"):  # vocabulary labels, scored at index time
        _check_one_score(lib, label)

    # a move: the moved photos' content is reused, their scores come from the store
    shutil.move(photos / "scenes", photos / "moved")
    report = lib.index()
    assert report.reused == 10 and report.indexed == 0
    _check_one_score(lib, "white ring")

    # a copy: byte-identical content is scored again for the new path, from the store
    shutil.copytree(photos / "moved", photos / "copies")
    assert lib.index().reused == 10
    _check_one_score(lib, "red star")

    # a label saved later is scored from the store over every photo
    lib.add_label("Green Triangle")
    _check_one_score(lib, "green triangle")
    lib.set_threshold("green triangle", 0.0)
    _check_one_score(lib, "Green Triangle")


def test_a_large_librarys_search_gives_the_same_photos_and_scores(tmp_path, monkeypatch):
    """Over a large library a new text is searched through the store's candidates: same hits, same scores."""
    import mkt_desktop.library.library as library_module

    write_demo_photos(tmp_path / "photos", count=30, seed=4)
    lib = Library(db_path=tmp_path / "library.sqlite", model="demo", vocabulary=False)
    lib.index([tmp_path / "photos"])
    exact_hits, exact_threshold = lib.search("yellow heart", limit=10)
    monkeypatch.setattr(library_module, "EXACT_SEARCH_PHOTOS", 5)  # 30 photos count as large now
    hits, threshold = lib.search("yellow heart", limit=10)
    assert [h.photo_id for h in hits] == [h.photo_id for h in exact_hits]
    assert max(abs(a.score - b.score) for a, b in zip(hits, exact_hits, strict=True)) <= 1e-4
    assert threshold == pytest.approx(exact_threshold, abs=1e-4)  # the sample is the whole library here


@pytest.mark.parametrize("large", [False, True])
def test_a_search_within_a_folder_gives_that_folders_best_photos(tmp_path, monkeypatch, large):
    """A folder (or date range) is searched among its own photos: its best ones, with the library's scores,
    whatever the photos elsewhere, by every path (a saved label, a new text, a large library's candidates)."""
    import mkt_desktop.library.library as library_module
    from mkt_desktop.library.browse import View

    write_demo_photos(tmp_path / "a", count=20, seed=4)
    write_demo_photos(tmp_path / "b", count=20, seed=9)
    lib = Library(db_path=tmp_path / "library.sqlite", model="demo", vocabulary=False)
    lib.index([tmp_path / "a", tmp_path / "b"])
    lib.add_label("red star")
    if large:
        monkeypatch.setattr(library_module, "EXACT_SEARCH_PHOTOS", 5)
    view = View(folder=str(tmp_path / "b"))
    among = lib.view_photo_ids(view)
    in_b = {lib.photo_id(p) for p in (tmp_path / "b").glob("*.jpg")}
    assert set(among) == in_b
    for text in ("red star", "yellow heart"):  # saved, then typed
        everywhere, _ = lib.search(text, limit=40)
        best_in_b = [h for h in everywhere if h.photo_id in in_b][:5]
        hits, _ = lib.search(text, limit=5, among=among)
        assert [h.photo_id for h in hits] == [h.photo_id for h in best_in_b], text
        assert max(abs(a.score - b.score) for a, b in zip(hits, best_in_b, strict=True)) <= 1e-4
    rows = lib.browse(View(folder=str(tmp_path / "b"), sort="newest"), lib.search("red star", 5, among=among).hits)
    assert len(rows) == 5 and {r.photo_id for r in rows} <= in_b
    photo = next(iter(in_b))
    similar = lib.similar(photo, limit=50, among=among)
    assert {h.photo_id for h in similar} == in_b - {photo}
    assert [h.photo_id for h in similar[:3]] == [h.photo_id for h in lib.similar(photo, limit=40)
                                                 if h.photo_id in in_b][:3]
