"""`crvae export`: a TF Serving SavedModel of a saved model, written into OUTPUT/VERSION/.

The export itself is `keras_crvae.export.export_saved_model`; this module checks the flags (the
model file, the base folder, an existing version folder) and reports the signatures written.
"""

import os

from keras_crvae.cli.checks import check_model_path, check_output_dir
from keras_crvae.cli.flags import FLAGS, UsageError, check_positive, flag_text
from keras_crvae.cli.runtime import load_library, load_model, say


def check():
    """--output, --model, --version and --overwrite; returns {}."""
    if not FLAGS.output:
        raise UsageError("--output is required: the model base directory, e.g. "
                         "--output=serving/mnist_crvae")
    check_model_path()
    check_positive("version", low=0)
    check_output_dir("output")
    target = os.path.join(FLAGS.output, str(FLAGS.version))
    if os.path.exists(target) and not FLAGS.overwrite:
        raise UsageError(f"{flag_text('output')}: {target} exists; pass --overwrite to replace "
                         "it or --version=N for a new version")
    return {}


def run(_):
    """Exports --model; returns the exit status."""
    load_library(FLAGS.verbose)
    from keras_crvae.export import export_saved_model

    model = load_model()
    directory = export_saved_model(model, FLAGS.output, version=FLAGS.version,
                                   overwrite=FLAGS.overwrite)
    signatures = "serving_default, sample, decode" + (", encode, reconstruct" if hasattr(
        model, "encoder") else "")
    say(f"Wrote the SavedModel to {directory} (signatures: {signatures})")
    return 0
