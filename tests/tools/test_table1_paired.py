"""`tools/reproduce/table1_paired.py`: the crVAE-vs-VAE difference paired per image, from the rows'
kept NLL parts, against a hand computation; and its refusals."""

import json
import math
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "reproduce" / "table1_paired.py"
sys.path.insert(0, str(ROOT / "tools" / "reproduce"))
import reproduction  # noqa: E402  (scripts beside each other, not a package)
import table1_paired  # noqa: E402

SETTINGS = {"num_samples": 5000, "part_images": 2, "seed": 0, "eval_batch_size": 100,
            "max_decoder_batch": 2000, "weights": "abc"}


def write_row(rows, name, parts, **changes):
    (rows / name).mkdir(parents=True)
    entry = {"settings": {**SETTINGS, **changes},
             "parts": {str(index): {"backend": backend, "nll": nll, "monte_carlo_error": None,
                                    "seconds": 1.0}
                       for index, (backend, nll) in parts.items()}}
    (rows / name / table1_paired.SCORE_PARTS).write_text(json.dumps({"nll": entry}))


def test_the_difference_pairs_the_images_both_rows_scored_alike(tmp_path):
    assert table1_paired.SCORE_PARTS == reproduction.SCORE_PARTS
    write_row(tmp_path, "mnist_crvae", {0: ("tensorflow", [80.0, 82.0]),
                                        1: ("tensorflow", [79.0, 81.5]),
                                        2: ("jax", [70.0, 71.0])},
              weights="crvae")
    write_row(tmp_path, "mnist_vae", {0: ("tensorflow", [81.0, 83.5]),
                                      1: ("tensorflow", [80.5, 82.0]),
                                      2: ("tensorflow", [90.0, 91.0]),  # another backend's noise
                                      3: ("tensorflow", [85.0, 86.0])},  # not scored by the crVAE
              weights="vae")
    output = tmp_path / "paired.json"
    result = subprocess.run([sys.executable, str(SCRIPT), f"--rows={tmp_path}",
                             f"--output={output}"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    paired = json.loads(output.read_text())
    differences = [-1.0, -1.5, -1.5, -0.5]  # by hand
    mean = sum(differences) / 4
    spread = math.sqrt(sum((d - mean) ** 2 for d in differences) / 3 / 4)
    assert paired["num_images"] == 4 and paired["parts"] == [0, 1]
    assert paired["difference_mean"] == pytest.approx(mean)
    assert paired["difference_standard_error"] == pytest.approx(spread)
    assert paired["first_nll"] == pytest.approx(80.625)
    assert paired["paper_difference"] == pytest.approx(-1.20)
    assert "paired on 4 images (parts [0, 1]): -1.125 +- 0.239 nats" in result.stdout


def test_only_prints_one_rows_interim_nll_over_its_kept_parts(tmp_path):
    write_row(tmp_path, "mnist_vae", {0: ("tensorflow", [81.0, 83.0]),
                                      2: ("tensorflow", [80.0, 84.0])})
    output = tmp_path / "vae.json"
    result = subprocess.run([sys.executable, str(SCRIPT), f"--rows={tmp_path}", "--only=mnist_vae",
                             f"--output={output}"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    interim = json.loads(output.read_text())
    # by hand: 81, 83, 80, 84 have mean 82 and sample variance 10 / 3
    assert interim["num_images"] == 4 and interim["parts"] == [0, 2]
    assert interim["nll"] == pytest.approx(82.0)
    assert interim["nll_standard_error"] == pytest.approx(math.sqrt(10 / 3 / 4))
    assert "mnist_vae: NLL 82.00 +- 0.91 nats on 4 images (parts [0, 2]" in result.stdout
    missing = subprocess.run([sys.executable, str(SCRIPT), f"--rows={tmp_path}",
                              "--only=mnist_crvae"], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no mnist_crvae/score_parts.json" in missing.stderr


def test_refusals_name_the_flag(tmp_path):
    def run():
        return subprocess.run([sys.executable, str(SCRIPT), f"--rows={tmp_path}"],
                              capture_output=True, text=True, timeout=60)

    refused = run()
    assert refused.returncode == 2 and "no mnist_crvae/score_parts.json" in refused.stderr
    write_row(tmp_path, "mnist_crvae", {0: ("tensorflow", [80.0, 82.0])})
    write_row(tmp_path, "mnist_vae", {0: ("tensorflow", [81.0, 83.5])}, seed=1)
    refused = run()
    assert refused.returncode == 2 and "'seed': (0, 1)" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
