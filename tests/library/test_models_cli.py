"""`mkt-desktop models`: what is installed and what can be had; `models add-official` makes the authors' MKT
a bundle the app opens, from state dicts in the authors' key layout built here."""

import json

import numpy as np
import open_clip
import torch

from mkt_core.model.config import TINY_VLP_CFG
from mkt_core.model.export import export_clip_bundle
from mkt_core.runtime.engine import Engine
from mkt_core.synthetic.world import write_demo_photos
from mkt_desktop.cli import main as mkt_desktop
from mkt_desktop.library.catalogue import AUTHORS_PAGE
from mkt_desktop.library.library import Library
from tests.core.test_convert import _released_stage1_state, _released_stage2_state


def _models(capsys, *args) -> list[dict]:
    capsys.readouterr()
    assert mkt_desktop(["models", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_models_lists_the_demo_what_was_made_and_what_can_be_had(tmp_path, capsys):
    db = str(tmp_path / "library.sqlite")
    choices = {c["title"]: c for c in _models(capsys, "--db", db, "--no-speed")}
    demo = next(c for c in choices.values() if c["spec"] == "demo")
    assert demo["installed"] and demo["two_streams"] and "coloured shapes" in demo["gives"]
    clip = next(c for c in choices.values() if c["spec"] == "clip:ViT-B-16/openai")
    assert not clip["installed"] and 500 < clip["download_mb"] < 700 and clip["two_streams"]
    official = next(c for c in choices.values() if "authors" in c["title"])
    assert AUTHORS_PAGE in official["how"] and "add-official" in official["how"]

    # a CLIP bundle the library made (clip:NAME/TAG) is listed as installed, with its speed measured here
    torch.manual_seed(0)
    export_clip_bundle("tiny", None, tmp_path / "cache" / "clip-bundles-2" / "tiny-random", model_cfg=TINY_VLP_CFG)
    made = [c for c in _models(capsys, "--db", db) if c["installed"] and c["spec"] != "demo"]
    assert len(made) == 1 and made[0]["two_streams"] and made[0]["photos_per_second"] > 0
    assert mkt_desktop(["models", "--db", db, "--no-speed"]) == 0
    text = capsys.readouterr().out
    assert "Installed" in text and "Can be had" in text and "heat maps" in text


def test_add_official_makes_a_bundle_whose_labels_are_clips_text_encoder(tmp_path, capsys):
    torch.manual_seed(1)
    clip = open_clip.CLIP(**TINY_VLP_CFG).eval()
    original = clip.token_embedding.weight.detach().clone()
    tuned = original + 0.05 * torch.randn_like(original)
    torch.save(_released_stage1_state(clip), tmp_path / "first_stage.pth")
    torch.save(_released_stage2_state(clip, tuned), tmp_path / "second_stage.pth")
    torch.save(clip.state_dict(), tmp_path / "clip.pt")
    db = str(tmp_path / "db" / "library.sqlite")
    out = _models(capsys, "add-official", str(tmp_path / "first_stage.pth"), str(tmp_path / "second_stage.pth"),
                  "--clip", str(tmp_path / "clip.pt"), "--preset", "tiny-release", "--name", "mkt-test", "--db", db)
    folder = out["model"]
    listed = [c for c in _models(capsys, "--db", db, "--no-speed") if c["spec"] == folder]
    assert listed and listed[0]["installed"] and listed[0]["two_streams"]

    # the labels are the released text model's: CLIP's text encoder with the tuned table, label tokens untuned
    engine = Engine(folder)
    label = "dog"
    table = tuned.clone()
    for token_id in open_clip.SimpleTokenizer().encode(label):
        table[token_id] = original[token_id]
    with torch.no_grad():
        clip.token_embedding.weight.copy_(table)
        tokens = open_clip.SimpleTokenizer(context_length=32)([engine.bundle.prompt.template.format(label)])
        expected = torch.nn.functional.normalize(clip.encode_text(tokens), dim=-1)[0].numpy()
    assert np.abs(engine.encode_labels([label])[0] - expected).max() <= 1e-4

    # and the app opens it: photos indexed, searched, a heat map on the patch grid
    write_demo_photos(tmp_path / "photos", count=6, seed=2)
    lib = Library(db_path=db, model=folder, vocabulary=False)
    assert lib.index([tmp_path / "photos"]).indexed == 6
    hits, _ = lib.search("red star", limit=3)
    assert len(hits) == 3 and lib.patch_scores(hits[0].photo_id, "red star").shape == (8, 8)
