"""tools/studies/face_curves.py: the table of every scored point of the runs."""

import pathlib
import sys

import pytest

from keras_crvae.jobs import scored_gan

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools" / "studies"))
import face_curves  # noqa: E402

pytestmark = pytest.mark.portable


def test_curve_table_lists_each_run_in_epoch_order(tmp_path):
    for folder, points in (("a", [(4, 0.5, 150.0), (2, 0.25, 200.0)]), ("b", [(2, 0.3, 210.0)])):
        for epoch, hours, fid in points:
            scored_gan.record_score(str(tmp_path / folder), {
                "epoch": epoch, "machine_hours": hours, "sample_fid": fid,
                "reconstruction_fid": fid / 2, "reconstruction_mse": fid / 10000})
    table = face_curves.curve_table({"crVAE-GAN": str(tmp_path / "a"),
                                     "VAE-GAN": str(tmp_path / "b")})
    assert table.splitlines()[2:] == [
        "| crVAE-GAN | 2 | 0.250 | 200.0 | 100.0 | 0.0200 |",
        "| crVAE-GAN | 4 | 0.500 | 150.0 | 75.0 | 0.0150 |",
        "| VAE-GAN | 2 | 0.300 | 210.0 | 105.0 | 0.0210 |"]


def test_late_table_compares_medians_of_the_last_hours(tmp_path):
    for folder, points in (("a", [(2, 0.2, 300.0), (4, 0.4, 150.0), (6, 0.6, 170.0)]),
                           ("b", [(2, 0.5, 140.0), (4, 0.6, 140.0)]), ("c", [])):
        (tmp_path / folder).mkdir()
        for epoch, hours, fid in points:
            scored_gan.record_score(str(tmp_path / folder), {
                "epoch": epoch, "machine_hours": hours, "sample_fid": fid,
                "reconstruction_fid": fid, "reconstruction_mse": 0.1})
    table = face_curves.late_table({"crVAE-GAN": str(tmp_path / "a"),
                                    "VAE-GAN": str(tmp_path / "b"),
                                    "none": str(tmp_path / "c")}, last_hours=0.25)
    # crVAE-GAN: 150 and 170 within 0.25 h of 0.6 (median 160); VAE-GAN: 140 twice, so every
    # resample's difference is 140 - a median of {150, 170} resampled: 150, 160 or 170.
    assert table.splitlines()[4:] == [
        "| crVAE-GAN | 2 | 160.0 | 150.0 | 170.0 | - |",
        "| VAE-GAN | 2 | 140.0 | 140.0 | 140.0 | -20.0 (-30.0 to -10.0) |",
        "| none | 0 | - | - | - | - |"]
