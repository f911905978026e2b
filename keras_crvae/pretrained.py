"""Trained models shipped with the repository: `load_pretrained(name)` and `list_pretrained()`.

The models live in the repository's `saved_models/<name>/` (`model.keras`, a model card `README.md`,
`metrics.json`, `samples.png`; `saved_model/1/` for TF Serving where shipped), not inside the Python
package, so the wheel stays small and the model cards stay beside the files they describe. The
reproduction rows ship through `tools/reproduce/ship_pretrained.py`, which writes those files from a row's
committed weights; a `model.keras` may hold its weights as float16 (`--weights_dtype=float16`,
after a measured NLL check), which Keras widens to the model's float32 variables when loading. A
model may instead come in the npz form (`model.json` + `weights.npz`, `keras_crvae.io.save_npz_form`;
`--weights_format=npz`): its `weights.npz` is the row's committed `final_weights.npz` byte for byte,
so the repository stores those weights once (the Table 1 rows, ~30 MB each).
Where they are found, in order:

1. the `directory` argument;
2. the `KERAS_CRVAE_MODELS` environment variable (a folder holding `<name>/model.keras`);
3. `saved_models/` of the source tree the package was imported from (an editable install,
   `pip install -e .`, or running from a checkout).

A regular (non-editable) install has no `saved_models/`: `load_pretrained` then raises a
`FileNotFoundError` that says where it looked and how to point it at a checkout.

>>> import keras_crvae
>>> keras_crvae.list_pretrained()
['mnist_crvae', 'mnist_crvae_narrow', 'mnist_mlp_iwae', 'mnist_mlp_iwae_2layer', 'mnist_mlp_vae',
 'mnist_mlp_vae_2layer', 'mnist_vae']
>>> model = keras_crvae.load_pretrained("mnist_crvae")
>>> tuple(model.sample(4, seed=0).shape)
(4, 28, 28, 1)
"""

import os

from keras_crvae.io import KERAS_MODEL_FILE, NPZ_FORM_CONFIG

MODELS_ENVIRONMENT_VARIABLE = "KERAS_CRVAE_MODELS"
# The files that make a folder a shipped model, in the order they are looked for: a `.keras` file or
# the npz form's `model.json` (`keras_crvae.io`).
MODEL_FILES = (KERAS_MODEL_FILE, NPZ_FORM_CONFIG)


def _source_tree_models():
    """`saved_models/` beside the package directory, i.e. in the checkout it was imported from."""
    package_dir = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(os.path.dirname(package_dir), "saved_models")


def pretrained_directories(directory=None):
    """The folders searched for shipped models, in the order of the module docstring (existing ones)."""
    candidates = [directory, os.environ.get(MODELS_ENVIRONMENT_VARIABLE), _source_tree_models()]
    return [os.path.abspath(os.fspath(c)) for c in candidates if c and os.path.isdir(c)]


def list_pretrained(directory=None):
    """Names of the shipped models found (folders holding a `model.keras`), sorted.

    Args:
        directory: str or None. An extra folder searched first.
    """
    names = set()
    for folder in pretrained_directories(directory):
        for name in os.listdir(folder):
            if any(os.path.isfile(os.path.join(folder, name, file)) for file in MODEL_FILES):
                names.add(name)
    return sorted(names)


def pretrained_path(name, directory=None):
    """Path of the shipped model `name`'s `model.keras`, or of its `model.json` (the npz form).

    Raises:
        FileNotFoundError: the model is in none of the searched folders; the message lists them.
    """
    if not isinstance(name, str) or not name or os.sep in name or name.startswith("."):
        raise ValueError(f"`name` must be a model name such as 'mnist_crvae'; got {name!r}.")
    folders = pretrained_directories(directory)
    for folder in folders:
        for file in MODEL_FILES:
            path = os.path.join(folder, name, file)
            if os.path.isfile(path):
                return path
    available = list_pretrained(directory)
    raise FileNotFoundError(
        f"No shipped model {name!r} (looked for {name}/{' or '.join(MODEL_FILES)} in "
        f"{folders or 'no existing folder'}; available: {available}). The shipped models live in "
        "the repository's saved_models/ folder, which a regular pip install does not include: "
        "install the checkout with `pip install -e .`, or set "
        f"{MODELS_ENVIRONMENT_VARIABLE}=/path/to/keras_crvae/saved_models, or pass `directory`."
    )


def load_pretrained(name, directory=None):
    """Loads the shipped model `name` (see `list_pretrained()`) as an uncompiled Keras model.

    Args:
        name: str, e.g. "mnist_crvae".
        directory: str or None. An extra folder searched first (it holds `<name>/model.keras` or
            `<name>/model.json` + `<name>/weights.npz`).

    Returns:
        The model (for "mnist_crvae*", "mnist_vae" and the 1-layer "mnist_mlp_*":
        `keras_crvae.models.VAE` with `encode`, `decode`, `sample`, `reconstruct`,
        `log_likelihood`; for the "*_2layer" ones
        `keras_crvae.models.HierarchicalVAE`). Compile it before calling `fit` or `evaluate`.
    """
    from keras_crvae import io

    return io.load_model(pretrained_path(name, directory), compile=False)
