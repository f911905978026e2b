"""`table1_precision_check`: the noise estimate and the verdict on curves with known noise."""

import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "reproduce"))
import table1_precision_check as tool  # noqa: E402  (a script, not a package)


def _curve(noise, shift=0.0, epochs=90, seed=0):
    rng = np.random.default_rng(seed)
    epochs_ = np.arange(1, epochs + 1)
    smooth = -85.0 - 60.0 * np.exp(-epochs_ / 8.0)
    return {int(e): float(v + shift) for e, v in zip(epochs_, smooth + rng.normal(0, noise, epochs))}


def test_noise_of_a_smooth_curve_with_white_noise_is_recovered():
    curve = _curve(0.3, epochs=2000)
    estimate = tool.noise_of_curve([curve[e] for e in sorted(curve) if e > 5])
    assert abs(estimate - 0.3) < 0.03


def test_same_protocol_matches_and_a_shifted_curve_differs():
    fp32 = _curve(0.2, seed=1)
    same = tool.compare_row(_curve(0.2, seed=2), fp32, skip_epochs=5)
    assert same["within_noise"] and same["epochs_compared"] == 85
    shifted = tool.compare_row(_curve(0.2, shift=-0.5, seed=2), fp32, skip_epochs=5)
    assert not shifted["within_noise"]
    assert abs(shifted["mean_difference"] + 0.5) < 0.15


def test_history_with_a_repeated_epoch_keeps_the_last_line(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,elbo,kl\n0,-200,1\n1,-150,1\n1,-149,1\n2,-140,1\n")
    assert tool.read_elbo(path) == {1: -200.0, 2: -149.0, 3: -140.0}
