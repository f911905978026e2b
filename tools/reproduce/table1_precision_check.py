"""Does mixed bfloat16 move Table 1? The bf16 rows' training ELBO per epoch against the float32 runs.

Issue 25 asks that the CPU rows, trained in mixed bfloat16, follow the float32 protocol: their training
ELBO (the `elbo` column of `history.csv`, averaged over each epoch's 390 steps) at the epochs the float32
runs on the lent H200 reached (`reproductions/table1_h200/ROW/history.csv`: the same preset, data,
optimizer and schedule in float32 on JAX; crVAE to epoch 48, VAE to 92) must match within the
epoch-to-epoch noise.

The noise is measured, not assumed: the float32 curve's own scatter about its trend, i.e. the standard
deviation of its second differences divided by sqrt(6) (for a curve that is smooth over three epochs
plus independent noise of standard deviation s, a second difference has standard deviation s*sqrt(6)),
over the compared epochs after the first five (the first epochs fall steeply, their curvature is not
noise). Two runs with different shuffles and noise differ by about sqrt(2) times that from noise
alone, so a row passes when the mean of its differences over those epochs lies within two standard
errors of zero (standard error sqrt(2)*s/sqrt(n)); the count of epochs whose difference lies within
two per-epoch standard deviations (2*sqrt(2)*s) is reported beside it.

    python tools/reproduce/table1_precision_check.py                       # table + JSON + plot
    python tools/reproduce/table1_precision_check.py --rows=reproductions/table1 --float32_rows=...

Writes `--output_json` (default docs/table1_precision.json) and `--output_plot` (default
docs/images/table1_bf16_vs_fp32.png; skipped without matplotlib) and prints a Markdown table.
"""

import json
import math
import pathlib

from absl import app, flags

ROOT = pathlib.Path(__file__).resolve().parents[2]
FLAGS = flags.FLAGS
flags.DEFINE_string("rows", str(ROOT / "reproductions" / "table1"), "Folder of the bf16 rows.")
flags.DEFINE_string("float32_rows", str(ROOT / "reproductions" / "table1_h200"),
                    "Folder of the float32 rows (history.csv per row).")
flags.DEFINE_list("compare_presets", ["mnist_crvae", "mnist_vae"], "Rows compared.")
flags.DEFINE_integer("skip_epochs", 5, "Leading epochs left out of the noise and mean difference.")
flags.DEFINE_string("output_json", str(ROOT / "docs" / "table1_precision.json"), "JSON output.")
flags.DEFINE_string("output_plot", str(ROOT / "docs" / "images" / "table1_bf16_vs_fp32.png"),
                    "Plot output ('' for none).")

SHOWN_EPOCHS = (1, 2, 5, 10, 20, 30, 40, 48, 60, 80, 92)


def read_elbo(path):
    """{epoch number counted from 1: training ELBO} from a Keras CSVLogger `history.csv`.

    A resumed row appends to its history; a repeated epoch keeps its last line (the epoch that the
    row's state continued from)."""
    lines = pathlib.Path(path).read_text().splitlines()
    header = lines[0].split(",")
    epoch_column, elbo_column = header.index("epoch"), header.index("elbo")
    elbo = {}
    for line in lines[1:]:
        if not line.strip() or line.startswith("epoch"):
            continue
        fields = line.split(",")
        elbo[int(fields[epoch_column]) + 1] = float(fields[elbo_column])
    return elbo


def noise_of_curve(values):
    """Standard deviation of the independent per-epoch scatter of a smooth curve: the standard
    deviation of its second differences over sqrt(6) (see the module docstring)."""
    second = [values[i - 1] - 2 * values[i] + values[i + 1] for i in range(1, len(values) - 1)]
    if len(second) < 2:
        return float("nan")
    mean = sum(second) / len(second)
    variance = sum((d - mean) ** 2 for d in second) / (len(second) - 1)
    return math.sqrt(variance / 6)


def compare_row(bf16, fp32, skip_epochs):
    """The comparison of one row: per-epoch differences and the verdict (module docstring)."""
    common = sorted(set(bf16) & set(fp32))
    later = [e for e in common if e > skip_epochs]
    fp32_noise = noise_of_curve([fp32[e] for e in sorted(fp32) if e > skip_epochs])
    differences = [bf16[e] - fp32[e] for e in later]
    result = {"epochs_compared": len(later), "last_common_epoch": common[-1] if common else 0,
              "float32_noise_per_epoch": round(fp32_noise, 3),
              "per_epoch": [{"epoch": e, "bfloat16": round(bf16[e], 3), "float32": round(fp32[e], 3),
                             "difference": round(bf16[e] - fp32[e], 3)} for e in common]}
    if not differences or math.isnan(fp32_noise):
        result["verdict"] = "too few epochs to compare"
        return result
    mean_difference = sum(differences) / len(differences)
    # Treats the epochs' differences as independent: strict, since two runs' trajectories also
    # drift apart slowly (another shuffle, other noise), which the per-epoch noise does not count.
    standard_error = math.sqrt(2) * fp32_noise / math.sqrt(len(differences))
    per_epoch_band = 2 * math.sqrt(2) * fp32_noise
    result.update({"mean_difference": round(mean_difference, 3),
                   "standard_error": round(standard_error, 3),
                   "epochs_within_two_noise_sd": sum(abs(d) <= per_epoch_band for d in differences),
                   "within_noise": bool(abs(mean_difference) <= 2 * standard_error)})
    result["verdict"] = ("matches within the noise" if result["within_noise"] else
                         f"differs by {mean_difference:+.2f} nats "
                         f"({abs(mean_difference) / standard_error:.1f} standard errors)")
    return result


def plot(results, curves, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot.")
        return
    figure, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.6))
    for axis, (name, (bf16, fp32)) in zip(list(getattr(axes, "flat", [axes])), curves.items()):
        for label, curve, style in (("float32 (H200, JAX)", fp32, "-"),
                                    ("mixed bfloat16 (CPU, TF)", bf16, "--")):
            epochs = sorted(curve)
            axis.plot(epochs, [curve[e] for e in epochs], style, label=label)
        axis.set_title(f"{name}: {results[name]['verdict']}")
        axis.set_xlabel("epoch")
        axis.set_ylabel("training ELBO (nats)")
        axis.set_ylim(-110, -80)
        axis.legend()
    figure.tight_layout()
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    print(f"wrote {path}")


def main(_):
    results, curves = {}, {}
    for name in FLAGS.compare_presets:
        bf16_path = pathlib.Path(FLAGS.rows) / name / "history.csv"
        fp32_path = pathlib.Path(FLAGS.float32_rows) / name / "history.csv"
        if not bf16_path.exists() or not fp32_path.exists():
            print(f"{name}: no {bf16_path if not bf16_path.exists() else fp32_path}; skipped")
            continue
        bf16, fp32 = read_elbo(bf16_path), read_elbo(fp32_path)
        results[name] = compare_row(bf16, fp32, FLAGS.skip_epochs)
        curves[name] = (bf16, fp32)
    lines = ["| row | epoch | bf16 ELBO | float32 ELBO | difference |", "|---|---|---|---|---|"]
    for name, result in results.items():
        for row in result["per_epoch"]:
            if (row["epoch"] in SHOWN_EPOCHS or row["epoch"] == result["last_common_epoch"]
                    or len(result["per_epoch"]) <= 12):
                lines.append(f"| {name} | {row['epoch']} | {row['bfloat16']:.2f} | "
                             f"{row['float32']:.2f} | {row['difference']:+.2f} |")
    print("\n".join(lines))
    for name, result in results.items():
        if "mean_difference" in result:
            print(f"{name}: epochs {FLAGS.skip_epochs + 1}-{result['last_common_epoch']}: mean "
                  f"difference {result['mean_difference']:+.3f} +- {result['standard_error']:.3f}, "
                  f"float32 noise per epoch {result['float32_noise_per_epoch']:.3f}: "
                  f"{result['verdict']}")
        else:
            print(f"{name}: {result['verdict']}")
    pathlib.Path(FLAGS.output_json).write_text(json.dumps(results, indent=2) + "\n")
    if FLAGS.output_plot and curves:
        plot(results, curves, FLAGS.output_plot)


if __name__ == "__main__":
    app.run(main)
