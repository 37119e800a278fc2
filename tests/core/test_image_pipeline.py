import numpy as np
import pytest
import torch
from PIL import Image

from mkt_core.model.export import export_bundle
from mkt_core.model.mkt import create_model
from mkt_core.runtime.engine import Engine
from mkt_core.runtime.image_pipeline import ImageLoadError, Preprocess, embed_files, load_rgb, resize

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _save_jpeg_with_orientation(path, image, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(path, quality=95, exif=exif)


def test_exif_orientation_is_applied(tmp_path):
    # stored 40 wide x 20 high, red on the left half; orientation 6 = turn 90 degrees clockwise to view
    stored = Image.new("RGB", (40, 20), BLUE)
    stored.paste(Image.new("RGB", (20, 20), RED), (0, 0))
    _save_jpeg_with_orientation(tmp_path / "rotated.jpg", stored, 6)
    upright = load_rgb(tmp_path / "rotated.jpg")
    assert upright.size == (20, 40)
    top, bottom = np.asarray(upright)[5, 10], np.asarray(upright)[35, 10]
    assert top[0] > 200 and top[2] < 60  # the stored left half is on top once turned clockwise
    assert bottom[2] > 200 and bottom[0] < 60


def test_large_jpeg_is_decoded_in_draft_mode_but_not_below_the_model_size(tmp_path):
    Image.new("RGB", (4000, 3000), (10, 200, 30)).save(tmp_path / "big.jpg", quality=80)
    image = load_rgb(tmp_path / "big.jpg", target_size=224)
    assert image.mode == "RGB"
    assert image.size[0] < 4000 and min(image.size) >= 224
    assert load_rgb(tmp_path / "big.jpg").size == (4000, 3000)  # without a target: full size


def test_odd_modes_become_rgb(tmp_path):
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")  # red in CMYK
    grey16 = Image.fromarray(np.full((8, 8), 65535 // 2, dtype=np.uint16))
    grey16.save(tmp_path / "grey16.png")
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))  # fully transparent red: white once flattened
    rgba.save(tmp_path / "alpha.png")
    palette = Image.new("P", (8, 8), 1)
    palette.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    palette.save(tmp_path / "palette.png")
    frames = [Image.new("RGB", (8, 8), colour) for colour in (RED, BLUE)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100)

    def pixel(name):
        image = load_rgb(tmp_path / name)
        assert image.mode == "RGB", name
        return np.asarray(image)[4, 4].astype(int)

    assert pixel("cmyk.jpg")[0] > 200 and pixel("cmyk.jpg")[1] < 60
    assert abs(pixel("grey16.png")[0] - 127) <= 2  # 16-bit scaled to 8 bits, not clipped to white
    assert (pixel("alpha.png") == 255).all()
    assert tuple(pixel("palette.png")) == (0, 255, 0)
    assert pixel("anim.gif")[0] > 200 and pixel("anim.gif")[2] < 60  # the first frame


def test_bad_files_raise_naming_the_file_and_reason(tmp_path):
    Image.new("RGB", (64, 64), RED).save(tmp_path / "good.jpg")
    data = (tmp_path / "good.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (tmp_path / "notes.jpg").write_text("this is not a picture")
    (tmp_path / "folder.jpg").mkdir()
    cases = {"truncated.jpg": "truncated|cannot decode", "notes.jpg": "not an image", "missing.jpg": "not found",
             "folder.jpg": "directory"}
    for name, reason in cases.items():
        with pytest.raises(ImageLoadError, match=reason) as error:
            load_rgb(tmp_path / name, target_size=64)
        assert str(tmp_path / name) in str(error.value)


def test_resize_modes():
    wide = Image.new("RGB", (300, 100), RED)
    assert resize(wide, 64, "squash").size == (64, 64)
    assert resize(wide, 64, "center_crop").size == (64, 64)
    with pytest.raises(ValueError, match="resize mode"):
        resize(wide, 64, "stretch")


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    torch.manual_seed(0)
    return Engine(export_bundle(create_model("tiny"), tmp_path_factory.mktemp("pipeline") / "bundle"))


def _photos(folder, count):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        paths.append(folder / f"photo{i}.jpg")
        Image.fromarray(rng.integers(0, 255, (48 + i, 80, 3), dtype=np.uint8)).save(paths[-1])
    return paths


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_a_bad_file_does_not_poison_its_batch(tmp_path, engine, pool):
    paths = _photos(tmp_path, 6)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    paths[2:2] = [tmp_path / "broken.jpg", tmp_path / "gone.jpg"]
    results = list(embed_files(paths, engine, batch_size=4, workers=2, pool=pool))

    assert [r.path for r in results] == [str(p) for p in paths]  # one result per file, in order
    assert [r.error is not None for r in results] == [False, False, True, True, False, False, False, False]
    assert "decode" in results[2].error or "not an image" in results[2].error or "truncated" in results[2].error
    assert "not found" in results[3].error
    preprocess = Preprocess.from_bundle(engine.bundle)
    good = [p for p in paths if p.name.startswith("photo")]
    expected_global, expected_local = engine.encode_images(np.stack([preprocess(p) for p in good]))
    embedded = [r for r in results if r.error is None]
    for i, result in enumerate(embedded):
        assert result.global_emb.shape == (64,) and result.local_emb.shape == (64, 64)
        assert np.abs(result.global_emb - expected_global[i]).max() <= 1e-5
        assert np.abs(result.local_emb - expected_local[i]).max() <= 1e-5


def test_a_batch_of_only_bad_files(tmp_path, engine):
    results = list(embed_files([tmp_path / "a.jpg", tmp_path / "b.png"], engine, batch_size=2, workers=1))
    assert all("not found" in r.error and r.global_emb is None for r in results)
