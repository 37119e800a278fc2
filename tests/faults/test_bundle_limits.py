"""7. A bundle's manifest cannot make the app allocate without bound: every number is checked on load."""

import json
import shutil

import pytest

from mkt_core.assets import DEMO_MODEL
from mkt_core.runtime.bundle import MANIFEST_FILE, BundleError, load_bundle


@pytest.fixture
def manifest(tmp_path, tiny_bundle):
    folder = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, folder)
    path = folder / MANIFEST_FILE
    return path, json.loads(path.read_text())


def _set(data: dict, dotted: str, value) -> dict:
    data = json.loads(json.dumps(data))
    *parents, last = dotted.split(".")
    target = data
    for key in parents:
        target = target[key]
    target[last] = value
    return data


@pytest.mark.parametrize(("field", "value"), [
    ("image_size", 100_000),  # the probe's: 15 GB of memory in a minute
    ("image_size", 0),
    ("image_size", -64),
    ("image_size", 64.5),
    ("embed_dim", 10**9),
    ("num_patches", 10**7),
    ("num_patches", 63),  # not the patch grid's 8 x 8
    ("patch_grid", [8, 10**6]),
    ("patch_grid", "8x8"),
    ("top_k", 0),
    ("top_k", 65),  # more than the 64 patches
    ("std", [0.0, 0.5, 0.5]),  # photos are divided by it
    ("mean", [0.5, 0.5]),
    ("mean", [0.5, 0.5, float("nan")]),
    ("resize", "stretch"),
    ("prompt.context_length", 10**6),
    ("prompt.context_length", 5),  # no room for a label after the prompt's own tokens
    ("prompt.sot_id", -1),
    ("prompt.eot_id", 10**9),
    ("prompt.prefix_ids", [1, 2, 10**8]),
])
def test_a_number_outside_what_the_format_allows_is_refused_naming_the_file_and_field(manifest, field, value):
    path, good = manifest
    path.write_text(json.dumps(_set(good, field, value)))
    with pytest.raises(BundleError) as error:
        load_bundle(path.parent)
    message = str(error.value)
    assert message.startswith(f"{path}: ") and repr(field) in message and "\n" not in message


def test_the_bundles_in_use_are_within_the_limits(tiny_bundle):
    assert load_bundle(tiny_bundle).image_size == 64
    if (DEMO_MODEL / MANIFEST_FILE).is_file():
        assert load_bundle(DEMO_MODEL).num_patches == 64
