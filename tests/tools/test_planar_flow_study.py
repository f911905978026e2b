"""tools/studies/planar_flow_vae.py: the paired per-image differences of the study's `--paired` step."""

import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools" / "studies"))
import planar_flow_vae  # noqa: E402

pytestmark = pytest.mark.portable


def test_paired_differences_of_consecutive_presets_and_last_against_first(tmp_path, monkeypatch):
    flags = planar_flow_vae.FLAGS
    flags(["planar_flow_vae.py"])  # parse the defaults
    presets = ["mnist_planar_k0", "mnist_planar_k10", "mnist_planar_k40"]
    monkeypatch.setattr(flags, "output_dir", str(tmp_path))
    monkeypatch.setattr(flags, "presets", presets)
    per_image = {"mnist_planar_k0": [10.0, 12.0, 11.0, 13.0],
                 "mnist_planar_k10": [9.0, 12.5, 10.0, 12.0],  # differences -1, +0.5, -1, -1
                 "mnist_planar_k40": [9.0, 12.5, 10.0, 12.0]}  # the same images, no change
    paper = {"mnist_planar_k0": 89.9, "mnist_planar_k10": 87.5, "mnist_planar_k40": 85.7}
    study = {"results": {}}
    for preset, values in per_image.items():
        (tmp_path / preset).mkdir()
        np.save(tmp_path / preset / planar_flow_vae.PER_IMAGE, np.array(values, np.float32))
        estimate = {"mean": float(np.mean(values)), "standard_error": 0.5}
        study["results"][preset] = {"valid_nll": estimate, "valid_elbo": estimate,
                                    "valid_kl": estimate, "paper_nll": paper[preset],
                                    "posterior_flow": None, "train_hours": 0.1}
    planar_flow_vae._paired_differences(study, valid=None)  # every per-image file exists
    pairs = {(p["later"], p["earlier"]): p for p in study["paired"]}
    assert sorted(pairs) == [("mnist_planar_k10", "mnist_planar_k0"),
                             ("mnist_planar_k40", "mnist_planar_k0"),
                             ("mnist_planar_k40", "mnist_planar_k10")]
    first = pairs[("mnist_planar_k10", "mnist_planar_k0")]
    # mean of (-1, 0.5, -1, -1) = -0.625; sample std: sqrt(((3 * 0.375^2) + 1.125^2) / 3) = 0.75
    assert first["mean_difference"] == pytest.approx(-0.625)
    assert first["standard_error"] == pytest.approx(0.75 / 2.0)
    assert first["paper_difference"] == pytest.approx(-2.4)
    assert pairs[("mnist_planar_k40", "mnist_planar_k10")]["mean_difference"] == 0.0
    assert pairs[("mnist_planar_k40", "mnist_planar_k0")]["mean_difference"] == pytest.approx(-0.625)
    table = planar_flow_vae._table(dict(study, data="d", steps=1, batch_size=1, nll_samples=1,
                                        num_valid=4, load_average=None))
    assert "| mnist_planar_k10 - mnist_planar_k0 | -0.625 | 0.375 | -2.4 |" in table
