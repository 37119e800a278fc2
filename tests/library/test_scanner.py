"""The scanner on real files in tmp_path: what gets listed, what gets reported, hashes and capture dates."""

import errno
import hashlib
import importlib.util
import os
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mkt_desktop.library import scanner
from mkt_desktop.library.scanner import (
    SUPPORTED_SUFFIXES,
    FileChanged,
    FoundFile,
    ScanProblem,
    content_hash,
    exif_taken_at,
    hash_stable,
    heic_supported,
    parse_exif_datetime,
    printable_path,
    read_stable,
    scan,
)


def photo(path: Path, fmt: str | None = None, color: tuple[int, int, int] = (200, 40, 40)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (12, 8), color)
    (image.convert("P") if (fmt or path.suffix.lower()) in (".gif", "GIF") else image).save(path, format=fmt)
    return path


def found(items) -> dict[str, FoundFile]:
    return {item.path: item for item in items if isinstance(item, FoundFile)}


def problems(items) -> dict[str, str]:
    return {item.path: item.reason for item in items if isinstance(item, ScanProblem)}


# -- what counts as a photo ---------------------------------------------------------------------


def test_lists_every_supported_format_in_any_case_and_nothing_else(tmp_path):
    photos = [
        photo(tmp_path / "a.jpg"), photo(tmp_path / "B.JPG", "JPEG"), photo(tmp_path / "c.jpeg"),
        photo(tmp_path / "d.Png", "PNG"), photo(tmp_path / "e.gif"), photo(tmp_path / "f.webp"),
        photo(tmp_path / "g.bmp"), photo(tmp_path / "h.tif"), photo(tmp_path / "sub" / "deeper" / "i.TIFF", "TIFF"),
    ]
    for sidecar in ["a.jpg.xmp", "a.xmp", "a.json", "IMG_1.AAE", "MVI_2.THM", "notes.txt", "README", "clip.mp4"]:
        (tmp_path / sidecar).write_text("not a photo")
    photo(tmp_path / ".thumbnails" / "cached.jpg")  # hidden folder
    photo(tmp_path / ".hidden.jpg")  # hidden file
    photo(tmp_path / "sub" / ".git" / "x.png")

    items = list(scan(tmp_path))

    assert problems(items) == {}
    assert set(found(items)) == {str(p) for p in photos}
    for path, item in found(items).items():
        info = os.stat(path)
        assert (item.size, item.mtime_ns) == (info.st_size, info.st_mtime_ns)


def test_scan_accepts_a_path_object_and_lists_in_name_order(tmp_path):
    for name in ["c.jpg", "a.jpg", "b.jpg"]:
        photo(tmp_path / name)
    assert [Path(i.path).name for i in scan(Path(tmp_path))] == ["a.jpg", "b.jpg", "c.jpg"]


def test_heic_is_a_photo_only_when_pillow_heif_is_installed(tmp_path):
    installed = importlib.util.find_spec("pillow_heif") is not None
    assert heic_supported() == installed
    assert (".heic" in SUPPORTED_SUFFIXES) == installed and (".heif" in SUPPORTED_SUFFIXES) == installed
    (tmp_path / "IMG_0001.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")
    assert bool(found(scan(tmp_path))) == installed


# -- links --------------------------------------------------------------------------------------


def test_symlink_loops_are_reported_and_the_walk_still_finishes(tmp_path):
    root = tmp_path / "photos"
    keep = photo(root / "2024" / "trip" / "beach.jpg")
    top = photo(root / "top.png")
    os.symlink("../..", root / "2024" / "trip" / "back-to-top")  # -> photos, an ancestor
    os.symlink("self-link", root / "self-link")  # a link to itself: ELOOP on stat
    os.symlink("pong", root / "ping")
    os.symlink("ping", root / "pong")

    items = list(scan(root))

    assert set(found(items)) == {str(keep), str(top)}  # each photo exactly once
    assert len([i for i in items if isinstance(i, FoundFile)]) == 2
    assert problems(items) == {
        str(root / "2024" / "trip" / "back-to-top"): "symlink loop",
        str(root / "self-link"): "symlink loop",
        str(root / "ping"): "symlink loop",
        str(root / "pong"): "symlink loop",
    }


def test_links_to_files_and_to_outside_folders_are_followed(tmp_path):
    outside = tmp_path / "nas"
    big = photo(outside / "big.jpg", color=(1, 2, 3))
    photo(outside / "album" / "inner.png")
    root = tmp_path / "photos"
    root.mkdir()
    os.symlink(big, root / "linked.jpg")
    os.symlink(outside, root / "nas")

    items = found(scan(root))

    assert set(items) == {str(root / "linked.jpg"), str(root / "nas" / "big.jpg"),
                          str(root / "nas" / "album" / "inner.png")}
    assert items[str(root / "linked.jpg")].size == big.stat().st_size  # the target's size, not the link's


def test_a_folder_reachable_twice_is_listed_once_under_its_real_path(tmp_path):
    root = tmp_path / "photos"
    real = photo(root / "zz-real" / "cat.jpg")
    os.symlink(root / "zz-real", root / "aa-alias")  # sorts first, but real folders win

    items = list(scan(root))

    assert list(found(items)) == [str(real)]
    assert problems(items) == {}


def test_broken_link_named_like_a_photo_is_reported(tmp_path):
    os.symlink(tmp_path / "gone.jpg", tmp_path / "link.jpg")
    os.symlink(tmp_path / "gone.txt", tmp_path / "link.txt")  # not a photo: ignored
    assert problems(scan(tmp_path)) == {str(tmp_path / "link.jpg"): "broken symbolic link"}


# -- problems -----------------------------------------------------------------------------------


def test_unreadable_folder_is_reported_and_the_rest_is_found(tmp_path, monkeypatch):
    """chmod 000 on a folder. Tests may run as root, for whom chmod 000 does not stop os.scandir; then the
    same code path is exercised by making os.scandir raise PermissionError for that folder."""
    ok = photo(tmp_path / "ok" / "a.jpg")
    locked = tmp_path / "locked"
    photo(locked / "secret.jpg")
    locked.chmod(0)
    if os.geteuid() == 0:
        real_scandir = os.scandir

        def scandir(path="."):
            if os.fspath(path) == str(locked):
                raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
            return real_scandir(path)

        monkeypatch.setattr(os, "scandir", scandir)
    try:
        items = list(scan(tmp_path))
    finally:
        locked.chmod(0o755)

    assert problems(items) == {str(locked): "permission denied"}
    assert set(found(items)) == {str(ok)}


def test_unreadable_root_is_a_problem_not_an_exception(tmp_path, monkeypatch):
    """As root, chmod 000 is not enough to deny access, so os.scandir is made to raise as it would for a user."""
    def scandir(path="."):
        raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))

    monkeypatch.setattr(os, "scandir", scandir)
    assert list(scan(tmp_path)) == [ScanProblem(str(tmp_path), "permission denied")]


def test_missing_root_or_file_root(tmp_path):
    assert list(scan(tmp_path / "unplugged")) == [ScanProblem(str(tmp_path / "unplugged"), "folder not found")]
    file = photo(tmp_path / "a.jpg")
    assert list(scan(file)) == [ScanProblem(str(file), "not a folder")]


def test_names_that_are_not_utf8_are_found_and_give_back_their_exact_bytes(tmp_path):
    base = os.fsencode(tmp_path)
    try:
        with open(os.path.join(base, b"bad\xff.jpg"), "wb") as file:
            file.write(b"\xff\xd8 not really a jpeg")
        os.mkdir(os.path.join(base, b"dir\xfe"))
    except OSError as exc:  # some file systems refuse such names outright
        pytest.skip(f"this file system does not take non-UTF-8 names: {exc}")
    inside = photo(Path(os.fsdecode(os.path.join(base, b"dir\xfe"))) / "inside.jpg")
    with open(os.path.join(base, b"notes\xff.txt"), "wb") as file:  # not a photo
        file.write(b"x")
    good = photo(tmp_path / "good.jpg")

    items = list(scan(tmp_path))

    assert problems(items) == {}
    assert {os.fsencode(p) for p in found(items)} == {os.path.join(base, b"bad\xff.jpg"), os.fsencode(inside),
                                                      os.fsencode(good)}
    assert printable_path(os.fsdecode(os.path.join(base, b"bad\xff.jpg"))) == f"{tmp_path}/bad\\xff.jpg"


def test_hidden_and_nas_folders_are_skipped_unless_the_setting_says_otherwise(tmp_path):
    for folder in (".git", "@eaDir", ".thumbnails", "#recycle", "#Recycle", "$RECYCLE.BIN", "keep"):
        photo(tmp_path / folder / "x.jpg")
    photo(tmp_path / ".hidden.jpg")  # a hidden file, such as macOS' "._x.jpg", is never a photo
    assert {Path(p).parent.name for p in found(scan(tmp_path))} == {"keep"}
    everything = {Path(p).parent.name for p in found(scan(tmp_path, skip=()))}
    assert everything == {".git", "@eaDir", ".thumbnails", "#recycle", "#Recycle", "$RECYCLE.BIN", "keep"}
    assert {Path(p).parent.name for p in found(scan(tmp_path, skip=[".*"]))} == {"@eaDir", "#recycle", "#Recycle",
                                                                                "$RECYCLE.BIN", "keep"}


def test_pipe_named_like_a_photo_is_reported_not_read(tmp_path):
    os.mkfifo(tmp_path / "stuck.jpg")
    assert problems(scan(tmp_path)) == {str(tmp_path / "stuck.jpg"): "not a regular file"}


# -- content hashes -----------------------------------------------------------------------------


def test_hash_is_blake2b_of_the_whole_file_across_chunks(tmp_path):
    data = np.random.default_rng(3).integers(0, 256, size=3 * scanner.CHUNK_SIZE + 12345, dtype=np.uint8).tobytes()
    path = tmp_path / "big.jpg"
    path.write_bytes(data)
    expected = hashlib.blake2b(data, digest_size=32).hexdigest()

    assert content_hash(path) == expected
    assert content_hash(path, size_hint=len(data)) == expected
    assert content_hash(path, size_hint=10) == expected  # a wrong hint costs speed, never correctness
    assert len(expected) == 64


def test_copies_share_a_hash_and_one_changed_byte_does_not(tmp_path):
    original = photo(tmp_path / "a.jpg")
    copy = tmp_path / "moved" / "renamed.jpg"
    copy.parent.mkdir()
    shutil.copyfile(original, copy)
    edited = tmp_path / "edited.jpg"
    data = bytearray(original.read_bytes())
    data[-3] ^= 1
    edited.write_bytes(bytes(data))
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")

    assert content_hash(original) == content_hash(copy)
    assert content_hash(original) != content_hash(edited)
    assert content_hash(empty, size_hint=0) == hashlib.blake2b(b"", digest_size=32).hexdigest()


@pytest.fixture(params=["bytes kept", "in chunks"])
def read_hash(request):
    """The indexer's one read of a file (bytes kept for decoding), and the chunked read of a large one."""
    keep = scanner.KEEP_BYTES if request.param == "bytes kept" else 0
    return lambda item: read_stable(item.path, item.size, item.mtime_ns, keep_bytes=keep)


def test_a_stable_read_accepts_an_untouched_file(tmp_path, read_hash):
    path = photo(tmp_path / "a.jpg")
    [item] = found(scan(tmp_path)).values()
    digest, data = read_hash(item)
    assert digest == content_hash(path) == hash_stable(item.path, item.size, item.mtime_ns)
    assert data is None or data == path.read_bytes()


def test_file_grown_after_the_scan_is_refused_even_with_its_old_mtime(tmp_path, read_hash):
    path = photo(tmp_path / "copying.jpg")
    [item] = found(scan(tmp_path)).values()
    with open(path, "ab") as file:
        file.write(b"more bytes arriving")
    os.utime(path, ns=(item.mtime_ns, item.mtime_ns))  # a copier that restores timestamps

    with pytest.raises(FileChanged) as caught:
        read_hash(item)
    assert caught.value.path == str(path)
    assert str(path) in str(caught.value) and "changed while being read" in str(caught.value)


def test_file_rewritten_in_place_with_the_same_size_is_refused(tmp_path, read_hash):
    path = photo(tmp_path / "edited.jpg")
    [item] = found(scan(tmp_path)).values()
    data = bytearray(path.read_bytes())
    data[-3] ^= 1
    path.write_bytes(bytes(data))
    os.utime(path, ns=(item.mtime_ns + 1_000_000_000, item.mtime_ns + 1_000_000_000))

    with pytest.raises(FileChanged):
        read_hash(item)


def test_file_changed_while_being_hashed_is_refused(tmp_path, monkeypatch, read_hash):
    """An editor saving in the middle of the read: simulated by appending after the first chunk is read."""
    path = tmp_path / "big.jpg"
    path.write_bytes(b"x" * (2 * scanner.CHUNK_SIZE))
    [item] = found(scan(tmp_path)).values()
    real_open = open

    def open_and_grow(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        if os.fspath(file) == str(path):
            with real_open(path, "ab") as writer:
                writer.write(b"appended during the read")
        return handle

    monkeypatch.setattr("builtins.open", open_and_grow)
    with pytest.raises(FileChanged):
        read_hash(item)


# -- capture time -------------------------------------------------------------------------------


def photo_with_exif(path: Path, original: str | None = None, plain: str | None = None) -> Path:
    exif = Image.Exif()
    if plain is not None:
        exif[0x0132] = plain
    if original is not None:
        exif.get_ifd(0x8769)[0x9003] = original
    Image.new("RGB", (16, 12), (10, 120, 30)).save(path, exif=exif)
    return path


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp"])
def test_taken_at_reads_date_time_original(tmp_path, suffix):
    path = photo_with_exif(tmp_path / f"a{suffix}", original="2019:07:14 18:30:05", plain="2023:01:01 09:00:00")
    assert exif_taken_at(path) == datetime(2019, 7, 14, 18, 30, 5)


def test_taken_at_falls_back_to_ifd0_date_time(tmp_path):
    assert exif_taken_at(photo_with_exif(tmp_path / "a.jpg", plain="2020:02:29 23:59:58")) == datetime(
        2020, 2, 29, 23, 59, 58)
    garbage_original = photo_with_exif(tmp_path / "b.jpg", original="not a date", plain="2021:05:06 07:08:09")
    assert exif_taken_at(garbage_original) == datetime(2021, 5, 6, 7, 8, 9)


def test_taken_at_is_none_for_garbage_not_an_error(tmp_path):
    assert exif_taken_at(photo_with_exif(tmp_path / "zero.jpg", original="0000:00:00 00:00:00")) is None
    assert exif_taken_at(photo_with_exif(tmp_path / "month13.jpg", original="2019:13:14 18:30:05")) is None
    assert exif_taken_at(photo(tmp_path / "none.png")) is None
    (tmp_path / "text.jpg").write_text("this is not an image")
    assert exif_taken_at(tmp_path / "text.jpg") is None
    assert exif_taken_at(tmp_path / "missing.jpg") is None
    full = photo_with_exif(tmp_path / "full.jpg", original="2019:07:14 18:30:05").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(full[:40])  # cut inside the EXIF block
    assert exif_taken_at(tmp_path / "cut.jpg") is None


@pytest.mark.parametrize(("value", "expected"), [
    ("2019:07:14 18:30:05", datetime(2019, 7, 14, 18, 30, 5)),
    ("2019:07:14 18:30:05\x00", datetime(2019, 7, 14, 18, 30, 5)),
    (b"2019:07:14 18:30:05", datetime(2019, 7, 14, 18, 30, 5)),
    ("2019-07-14T18:30:05+02:00", datetime(2019, 7, 14, 18, 30, 5)),
    ("2019:07:14 18:30", datetime(2019, 7, 14, 18, 30)),
    ("2019:07:14", datetime(2019, 7, 14)),
    ("    :  :     :  :  ", None),
    ("", None),
    (None, None),
    (20190714, None),
])
def test_parse_exif_datetime_variants(value, expected):
    assert parse_exif_datetime(value) == expected
