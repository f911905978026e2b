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


def test_grids_selected_every_hours_and_the_progress_strip(tmp_path):
    assert face_curves.selected_checkpoints([0.2, 0.5, 0.9, 1.1, 1.6, 2.3], 1.0) == [3, 5]
    assert face_curves.selected_checkpoints([0.2, 0.4], 1.0) == [1]  # the last only
    assert face_curves.selected_checkpoints([], 1.0) == []
    import numpy as np
    from PIL import Image

    from keras_crvae.io import save_image_grid

    folder = tmp_path / "run"
    for epoch, hours, shade in ((1, 0.6, 0.2), (2, 1.2, 0.8)):
        # 64 uniform tiles of one grey per checkpoint, the first row's as the job draws them.
        images = np.full((64, 64, 64, 3), shade, dtype="float32")
        save_image_grid(images, str(folder / "grids" / f"samples_epoch{epoch}.png"))
        scored_gan.record_score(str(folder), {
            "epoch": epoch, "machine_hours": hours, "sample_fid": 100.0 / epoch,
            "reconstruction_fid": 1.0, "reconstruction_mse": 0.1,
            "samples_png": f"grids/samples_epoch{epoch}.png",
            "reconstructions_png": f"grids/reconstructions_epoch{epoch}.png"})
    table = face_curves.copy_grids({"crVAE-GAN": str(folder)}, str(tmp_path / "docs"), 1.0)
    assert table.splitlines()[-1] == ("| crVAE-GAN | 2 | 1.20 | 50.0 | [samples](crVAE-GAN/"
                                      "samples_epoch2.png) | (not on this machine) |")
    assert (tmp_path / "docs" / "crVAE-GAN" / "samples_epoch2.png").exists()
    assert not (tmp_path / "docs" / "crVAE-GAN" / "samples_epoch1.png").exists()
    strip = np.asarray(Image.open(tmp_path / "docs" / "crVAE-GAN" / "progress.png"))
    # Two rows of 8 native-size tiles (64 pixels + the 2 of padding below), the first checkpoint
    # on top.
    assert strip.shape == (2 * 66, 8 * 66 + 2, 3)
    assert strip[32, 2 + 32, 0] == round(0.2 * 255) and strip[66 + 32, 2 + 32, 0] == round(
        0.8 * 255)
    assert strip[65, 2 + 32, 0] == 255  # the white padding between the rows
