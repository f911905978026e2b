"""`crvae presets`: lists the presets, one line each (name and description)."""

from keras_crvae import presets


def check():
    """`crvae presets` takes no flags of its own: nothing to check."""
    return None


def run(_):
    """Prints the presets; returns the exit status."""
    for name in presets.list_presets():
        print(f"{name:26s} {presets.PRESETS[name].description}")
    return 0
