"""Train on my tags: a library's decisions -> mkt-train stage 1 and 2 -> a bundle the app opens and tags with."""

import csv
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from mkt_core.assets import TOY_VIT_TEACHER
from mkt_desktop.library import Library
from mkt_desktop.library.catalogue import TRAINED_FOLDER, catalogue
from mkt_desktop.library.demo import write_demo_folder
from mkt_desktop.library.training_job import plan_training, run_training
from trainer.cli import main as mkt_train


def _decide(lib: Library, folder: str, count: int) -> tuple[dict[int, str], int]:
    """Accept each of the first `count` photos' first true label, reject "red star" where it is false;
    ({photo: its accepted label}, how many rejects)."""
    accepted, rejected = {}, 0
    with open(Path(folder) / "labels.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows[:count]:
        labels = row["labels"].split("|")
        photo = lib.photo_id(str(Path(folder) / row["path"]))
        lib.set_tag(photo, labels[0], "accepted")
        accepted[photo] = labels[0]
        if "red star" not in labels:
            lib.set_tag(photo, "red star", "rejected")
            rejected += 1
    return accepted, rejected


@pytest.fixture(scope="module")
def toy_clip_library(tmp_path_factory):
    """A library on the toy ViT teacher chosen as a person chooses a CLIP model on disk (`clip:NAME//FOLDER`,
    an open_clip folder): the app makes its two-stream bundle in the library's cache."""
    root = tmp_path_factory.mktemp("toy-clip-library")
    folder = write_demo_folder(root, count=36, seed=3)
    lib = Library(db_path=root / "library.sqlite", model=f"clip:toy-vit/{TOY_VIT_TEACHER}", vocabulary=False)
    assert lib.bundle.kind == "clip" and lib.bundle.num_patches == 64  # both streams: Eq. 3 and heat maps
    assert lib.bundle.path.parent == root / "cache" / "clip-bundles-2"
    assert lib.index([folder]).indexed == 36
    return (lib, folder, *_decide(lib, folder, 30))


@pytest.mark.slow
def test_training_on_my_tags_makes_a_model_the_library_opens_and_tags_with(toy_clip_library):
    lib, folder, accepted, rejected = toy_clip_library
    plan = plan_training(lib, name="mine", epochs=3)
    assert plan.start_model == lib.bundle.path and plan.distill  # from the library's own CLIP: the release variant
    assert plan.fix_layer == 2  # the toy teacher has 4 blocks: the last two train, as the release's 2 of 12
    seen = []
    report = run_training(plan, progress=seen.append)

    assert not report.cancelled and report.bundle == lib.db_path.parent / "cache" / TRAINED_FOLDER / "mine"
    assert (report.photos, report.accepted, report.rejected) == (30, 30, rejected)
    steps = [p.step for p in seen]
    assert steps.index("stage1") < steps.index("stage2") < steps.index("export")
    assert [p.done for p in seen] == sorted(p.done for p in seen) and seen[-1].done == 1.0
    assert any("step" in p.message for p in seen)  # the steps of a stage as it runs

    listed = {c.spec: c for c in catalogue(lib.db_path.parent / "cache")}
    assert str(report.bundle) in listed and listed[str(report.bundle)].installed

    mine = Library(db_path=lib.db_path, model=str(report.bundle), vocabulary=False)
    assert mine.bundle.kind == "mkt" and mine.bundle.num_patches == 64
    assert mine.index([folder]).indexed == 36  # every photo again, with the new model
    photo, label = next(iter(accepted.items()))
    hits, _ = mine.search(label, limit=36)
    assert len(hits) == 36
    assert mine.patch_scores(photo, label).shape == (8, 8)  # both streams: a heat map
    before, after = lib.embeddings(photo)[0], mine.embeddings(photo)[0]
    assert not np.allclose(before, after, atol=1e-3)  # the image model did learn: its embedding moved
    assert mine.photo_labels(photo)  # the photo view of the new model


def test_cancel_stops_training_and_installs_no_model(tmp_path):
    folder = write_demo_folder(tmp_path, count=20, seed=1)
    lib = Library(db_path=tmp_path / "library.sqlite", model="demo", vocabulary=False)
    lib.index([folder])
    _decide(lib, folder, 16)
    plan = plan_training(lib, name="stopped", epochs=50)
    assert not plan.distill  # an MKT bundle does not carry its teacher
    cancel = threading.Event()

    def progress(p):
        if p.step == "stage1" and "step" in p.message:
            cancel.set()  # once training really runs

    report = run_training(plan, progress=progress, cancel=cancel.is_set)
    assert report.cancelled and report.bundle is None
    assert not (tmp_path / "cache" / TRAINED_FOLDER / "stopped").exists()
    assert "stopped" not in {Path(c.spec).name for c in catalogue(tmp_path / "cache")}
    assert (plan.run_folder / "stage1" / "checkpoints" / "last").is_dir()  # saved where it stopped


def test_training_without_accepted_tags_names_the_library_and_what_to_do(tmp_path, capsys):
    folder = write_demo_folder(tmp_path, count=6, seed=2)
    lib = Library(db_path=tmp_path / "library.sqlite", model="demo", vocabulary=False)
    lib.index([folder])
    lib.set_tag(lib.photo_id(str(sorted(Path(folder).glob("*.jpg"))[0])), "red star", "rejected")
    rc = mkt_train(["stage1", "--data", f"library:{lib.db_path}", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 1 and str(lib.db_path) in err and "no accepted tags" in err and "accept" in err
    rc = mkt_train(["stage1", "--data", str(lib.db_path), "--out", str(tmp_path / "run")])
    assert rc == 1 and "library:PATH" in capsys.readouterr().err
    rc = mkt_train(["stage1", "--data", f"library:{tmp_path / 'none.sqlite'}", "--out", str(tmp_path / "run")])
    assert rc == 1 and "no library there" in capsys.readouterr().err
    assert not (tmp_path / "none.sqlite").exists()


def test_an_mkt_bundle_distils_only_with_its_teacher_given(tmp_path, capsys):
    folder = write_demo_folder(tmp_path, count=6, seed=2)
    lib = Library(db_path=tmp_path / "library.sqlite", model="demo", vocabulary=False)
    lib.index([folder])
    _decide(lib, folder, 6)
    rc = mkt_train(["stage1", "--data", f"library:{lib.db_path}", "--out", str(tmp_path / "run"), "--epochs", "1"])
    err = capsys.readouterr().err
    assert rc == 1 and "does not carry its teacher" in err and "--distill-weight 0" in err


@pytest.mark.slow
def test_the_command_line_trains_and_says_how_to_use_the_new_model(tmp_path, capsys):
    from mkt_desktop.cli import main as mkt_desktop

    folder = write_demo_folder(tmp_path, count=10, seed=6)
    db = tmp_path / "library.sqlite"
    assert mkt_desktop(["index", folder, "--db", str(db)]) == 0
    capsys.readouterr()
    assert mkt_desktop(["train", "--db", str(db), "--json"]) == 1  # nothing accepted yet
    assert "no accepted tags" in json.loads(capsys.readouterr().out)["error"]  # --json: the error too
    lib = Library(db_path=db, model="demo", vocabulary=False)
    _decide(lib, folder, 8)
    assert mkt_desktop(["train", "--db", str(db), "--epochs", "1", "--name", "cli", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["bundle"] == str(tmp_path / "cache" / TRAINED_FOLDER / "cli") and not result["cancelled"]
    assert result["accepted"] == 8
    assert mkt_desktop(["search", "red star", "--db", str(db), "--model", result["bundle"], "--json"]) == 0
