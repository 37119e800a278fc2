"""Calibrated confidence: monotone, invertible, stored in the manifest outside the fingerprint."""

import json
import shutil
import subprocess

import numpy as np
import pytest

from mkt_core.assets import DEMO_MODEL
from mkt_core.runtime.bundle import BundleError, fingerprint, load_bundle
from mkt_core.runtime.calibration import NULL_TEXTS, Calibration, CalibrationError, fit_calibration


def test_a_fit_is_strictly_increasing_invertible_and_matches_the_observed_share():
    rng = np.random.default_rng(0)
    scores = rng.normal(0, 2, 20_000)
    truth = rng.random(20_000) < 1 / (1 + np.exp(-(scores - 1.5) * 1.7))
    calibration = fit_calibration(scores, truth)
    grid = np.linspace(-15, 15, 2001)
    confidence = calibration.confidence(grid)
    assert (np.diff(confidence) > 0).all() and (confidence > 0).all() and (confidence < 1).all()
    for level in (0.01, 0.2, 0.5, 0.9, 0.999):
        assert calibration.confidence(calibration.score_at(level)) == pytest.approx(level, abs=1e-9)
    assert calibration.score_at(0.5) == pytest.approx(1.5, abs=0.3)
    again = Calibration.from_dict(json.loads(json.dumps(calibration.to_dict())))
    assert np.allclose(again.confidence(grid), confidence, atol=1e-5)


def test_bad_calibrations_are_refused_with_a_reason():
    with pytest.raises(CalibrationError, match="both true and false"):
        fit_calibration([1.0, 2.0], [True, True])
    with pytest.raises(CalibrationError, match="increase"):
        Calibration(np.array([1.0, 0.5]), np.array([0.2, 0.3]), 1.0)
    with pytest.raises(CalibrationError, match="between 0 and 1"):
        Calibration.logistic(0.0, 1.0).score_at(1.0)


def test_the_demo_model_carries_a_calibration_and_keeps_its_fingerprint(tmp_path):
    bundle = load_bundle(DEMO_MODEL)
    assert bundle.calibration is not None and "synthetic world" in bundle.calibration.fitted_on
    assert 0.5 < float(bundle.calibration.confidence(11.0)) < 1.0
    manifest = dict(bundle.manifest)
    without = {k: v for k, v in manifest.items() if k != "calibration"}
    assert fingerprint({}, manifest) == fingerprint({}, without)  # the field is outside the fingerprint
    shipped = subprocess.run(["git", "show", "969759f:assets/demo-model/manifest.json"], cwd=DEMO_MODEL.parent.parent,
                             capture_output=True, text=True)
    if shipped.returncode == 0:  # a checkout with history: the fingerprint is the one shipped before
        assert json.loads(shipped.stdout)["fingerprint"] == bundle.fingerprint


def test_a_bundle_without_calibration_loads_and_a_malformed_one_is_named(tmp_path):
    folder = tmp_path / "bundle"
    shutil.copytree(DEMO_MODEL, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.pop("calibration")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert load_bundle(folder).calibration is None
    manifest["calibration"] = {"method": "isotonic", "scores": [1, 2], "confidences": [0.9, 0.1], "slope": 1}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="manifest.json: malformed: field 'calibration'"):
        load_bundle(folder)


def test_the_null_texts_are_fixed_random_letters():
    assert len(NULL_TEXTS) == 32 and len(set(NULL_TEXTS)) == 32
    assert all(t.replace(" ", "").isalpha() and t.islower() for t in NULL_TEXTS)


def test_calibrating_a_bundle_on_labelled_photos_writes_its_manifest(tmp_path):
    from mkt_core.runtime.calibration import calibrate_bundle
    from mkt_core.synthetic.world import write_demo_photos

    folder = tmp_path / "bundle"
    shutil.copytree(DEMO_MODEL, folder)
    before = load_bundle(folder)
    labels_csv = write_demo_photos(tmp_path / "photos", 40, seed=1, stream="eval")
    calibration = calibrate_bundle(folder, labels_csv, "40 test scenes")
    after = load_bundle(folder)
    assert after.fingerprint == before.fingerprint
    assert after.manifest["calibration"]["fitted_on"] == "40 test scenes"
    assert after.manifest["calibration"]["pairs"] == 40 * 80
    assert np.allclose(after.calibration.confidence([5.0, 10.0]), calibration.confidence([5.0, 10.0]), atol=1e-5)
