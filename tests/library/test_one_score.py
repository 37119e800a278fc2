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
