"""`reproduce_iwae_table.table_checks`: the goal and the paper's orderings, on hand-made rows."""

import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "reproduce"))
import reproduce_iwae_table as tool  # noqa: E402  (a script beside `reproduction.py`, not a package)


def _row(preset, nll, standard_error, paper_nll):
    return {"preset": preset, "nll": {"mean": nll, "standard_error": standard_error},
            "paper_nll": paper_nll}


def test_gaps_against_the_goal_and_the_orderings_of_finished_pairs():
    rows = [_row("mnist_mlp_vae", 86.93, 0.3, 86.76),       # +0.17
            _row("mnist_mlp_iwae", 87.00, 0.4, 85.54),      # +1.46, worse than the VAE
            _row("mnist_mlp_vae_2layer", 87.36, 0.0, 85.33)]  # +2.03, outside
    checks = tool.table_checks(rows)
    assert [(c["preset"], c["gap"], c["within_goal"]) for c in checks["rows"]] == [
        ("mnist_mlp_vae", 0.17, True), ("mnist_mlp_iwae", 1.46, True),
        ("mnist_mlp_vae_2layer", 2.03, False)]
    orderings = {(o["better"], o["worse"]): o for o in checks["orderings"]}
    # Only the pairs whose rows are both here: IWAE vs VAE (1 layer), 2 vs 1 layer (VAE).
    assert set(orderings) == {("mnist_mlp_iwae", "mnist_mlp_vae"),
                              ("mnist_mlp_vae_2layer", "mnist_mlp_vae")}
    iwae_vs_vae = orderings[("mnist_mlp_iwae", "mnist_mlp_vae")]
    assert iwae_vs_vae["difference"] == pytest.approx(86.93 - 87.00)
    assert iwae_vs_vae["standard_error"] == pytest.approx(0.5)  # sqrt(0.3^2 + 0.4^2)
    assert not iwae_vs_vae["holds"]
    assert not orderings[("mnist_mlp_vae_2layer", "mnist_mlp_vae")]["holds"]
    text = "\n".join(tool.checks_text(checks))
    assert "**outside** the 1.5-nat goal" in text and text.count("**does not hold**") == 2


def test_orderings_that_hold_and_no_pair_yet():
    rows = [_row("mnist_mlp_vae_2layer", 85.40, 0.2, 85.33),
            _row("mnist_mlp_iwae_2layer", 84.00, 0.2, 83.89)]
    (order,) = tool.table_checks(rows)["orderings"]
    assert order["holds"] and order["difference"] == pytest.approx(1.40)
    lone = tool.checks_text(tool.table_checks(rows[:1]))
    assert lone[-1] == "- the orderings: no pair of rows finished yet"
