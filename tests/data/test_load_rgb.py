"""load_rgb: every odd kind of photo becomes upright 8-bit RGB, every broken one a named ImageLoadError."""

import pickle

import numpy as np
import pytest
from PIL import Image

from mkt_core.data import ImageLoadError, load_rgb
from mkt_core.runtime.images import MAX_PIXELS, pixel_limit
from tests.data.helpers import write_image, write_noise_jpeg, write_random_bytes


def pixel(img: Image.Image, xy: tuple[int, int]) -> np.ndarray:
    return np.asarray(img, dtype=np.int32)[xy[1], xy[0]]


def test_exif_orientation_6_is_applied(tmp_path):
    # 40 wide, 20 high: left half red, right half blue. Orientation 6 = "rotate 90 clockwise to show".
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :20] = (255, 0, 0)
    pixels[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    assert Image.open(path).size == (40, 20)

    img = load_rgb(path)
    assert img.mode == "RGB"
    assert img.size == (20, 40)
    # Turned clockwise, the left (red) half is on top and the right (blue) half at the bottom.
    top, bottom = pixel(img, (10, 5)), pixel(img, (10, 35))
    assert top[0] > 200 and top[2] < 60
    assert bottom[2] > 200 and bottom[0] < 60


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=95)  # no cyan, full magenta + yellow: red
    assert Image.open(path).mode == "CMYK"
    img = load_rgb(path)
    assert img.mode == "RGB"
    r, g, b = pixel(img, (8, 8))
    assert r > 220 and g < 40 and b < 40


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 65535], [128 * 257, 1000]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == "I;16"
    img = load_rgb(path)
    assert img.mode == "RGB"
    got = np.asarray(img)[..., 0]
    np.testing.assert_array_equal(got, [[0, 255], [128, 4]])
    assert (np.asarray(img)[..., 0] == np.asarray(img)[..., 2]).all()


def test_32_bit_integer_image_is_scaled_as_16_bit(tmp_path):
    path = tmp_path / "int.tif"
    Image.fromarray(np.array([[65535, 257 * 10]], dtype=np.int32), mode="I").save(path)
    np.testing.assert_array_equal(np.asarray(load_rgb(path))[0, :, 1], [255, 10])


def test_palette_png_transparency_goes_over_white(tmp_path):
    img = Image.new("P", (4, 4), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0, 0, 0] * 254)  # index 0 black (transparent), 1 red
    img.putpixel((1, 1), 1)
    path = tmp_path / "palette.png"
    img.save(path, transparency=0)
    out = load_rgb(path)
    assert out.mode == "RGB"
    assert tuple(pixel(out, (0, 0))) == (255, 255, 255)
    assert tuple(pixel(out, (1, 1))) == (255, 0, 0)


def test_rgba_is_composited_over_white(tmp_path):
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[0, 0] = (0, 0, 255, 0)  # fully transparent blue -> white
    rgba[0, 1] = (255, 0, 0, 255)  # opaque red -> red
    rgba[0, 2] = (0, 0, 0, 128)  # half transparent black -> mid grey
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    out = load_rgb(path)
    assert out.mode == "RGB"
    assert tuple(pixel(out, (0, 0))) == (255, 255, 255)
    assert tuple(pixel(out, (1, 0))) == (255, 0, 0)
    assert all(abs(int(v) - 127) <= 1 for v in pixel(out, (2, 0)))


def test_gray_with_alpha_and_plain_gray(tmp_path):
    la = tmp_path / "la.png"
    Image.new("LA", (2, 2), (10, 0)).save(la)
    assert tuple(pixel(load_rgb(la), (0, 0))) == (255, 255, 255)
    gray = tmp_path / "gray.png"
    Image.new("L", (2, 2), 77).save(gray)
    out = load_rgb(gray)
    assert out.mode == "RGB" and tuple(pixel(out, (1, 1))) == (77, 77, 77)


def test_animated_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert getattr(Image.open(path), "n_frames", 1) == 2
    out = load_rgb(path)
    assert out.mode == "RGB"
    r, g, b = pixel(out, (4, 4))
    assert r > 200 and b < 50


def test_draft_mode_decodes_big_jpegs_small_but_not_too_small(tmp_path):
    path = write_image(tmp_path / "big.jpg", size=(1024, 768))
    assert load_rgb(path).size == (1024, 768)
    small = load_rgb(path, target_size=200)
    assert min(small.size) >= 200 and small.size[0] < 1024
    assert small.size[0] * 768 == small.size[1] * 1024  # aspect ratio kept


@pytest.mark.parametrize("kind, reason", [
    ("truncated", "truncated"),
    ("empty", "zero bytes"),
    ("text", "not an image"),
    ("random", "not an image"),
    ("missing", "file not found"),
])
def test_broken_files_raise_image_load_error_naming_the_file(tmp_path, kind, reason):
    path = tmp_path / f"{kind}.jpg"
    if kind == "truncated":
        data = open(write_noise_jpeg(tmp_path / "whole.jpg"), "rb").read()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not a picture\n")
    elif kind == "random":
        write_random_bytes(path)
    with pytest.raises(ImageLoadError) as info:
        load_rgb(path)
    assert str(path) in str(info.value)
    assert reason in info.value.reason
    assert info.value.path == str(path)
    assert isinstance(info.value, ValueError)


def test_decompression_bomb_is_an_image_load_error(tmp_path, monkeypatch):
    path = write_image(tmp_path / "wide.png", size=(30, 20))
    with pytest.raises(ImageLoadError, match="decompression bomb"):
        load_rgb(path, max_pixels=599)
    assert load_rgb(path, max_pixels=600).size == (30, 20)
    # PIL's own limit, wherever it is set, is ours too ...
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    assert pixel_limit() == 200
    with pytest.raises(ImageLoadError, match="decompression bomb"):
        load_rgb(path)
    # ... and switching PIL's off does not switch ours off.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    assert pixel_limit() == MAX_PIXELS


def test_image_load_error_survives_pickling_and_one_argument_construction():
    err = pickle.loads(pickle.dumps(ImageLoadError("/photos/a.jpg", "truncated")))
    assert (err.path, err.reason) == ("/photos/a.jpg", "truncated")
    assert str(err) == "cannot load image /photos/a.jpg: truncated"
    one = pickle.loads(pickle.dumps(ImageLoadError("Caught ImageLoadError in worker")))
    assert str(one) == "Caught ImageLoadError in worker"
