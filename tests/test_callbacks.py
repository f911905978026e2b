"""`AtomicBackupAndRestore`: a checkpoint write that fails part-way (disk full) or is killed leaves
the previous checkpoint loadable and no temporary file; the files stay Keras' own.

(Keras' own callback, failing the same way, writes its only checkpoint in place through HDF5, which
crashes the process with a segmentation fault in `h5py.File.close`: not something a test process
can survive, so it is not demonstrated here.)"""

import contextlib
import json
import os
import resource

import keras
import numpy as np
import pytest

from keras_crvae.callbacks import AtomicBackupAndRestore
from keras_crvae.io import atomic_path


def tiny_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(256), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(0.01), "mse")
    return model


def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(32, 4)).astype("float32"), rng.normal(size=(32, 1)).astype("float32")


@contextlib.contextmanager
def file_size_limit(size):
    """Writes past `size` bytes fail with EFBIG ("File too large"), as on a full disk: Python
    ignores SIGXFSZ, so the write returns the error instead of killing the process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_the_backup_is_keras_format_and_resumes_in_keras_own_callback(tmp_path):
    x, y = data()
    model = tiny_model()
    model.fit(x, y, epochs=2, verbose=0,
              callbacks=[AtomicBackupAndRestore(str(tmp_path), delete_checkpoint=False)])
    assert sorted(os.listdir(tmp_path)) == ["latest.weights.h5", "training_metadata.json"]
    assert json.loads((tmp_path / "training_metadata.json").read_text())["epoch"] == 2
    resumed = tiny_model()
    history = resumed.fit(x, y, epochs=3, verbose=0, callbacks=[
        keras.callbacks.BackupAndRestore(str(tmp_path), delete_checkpoint=False)])
    assert history.epoch == [2]  # Keras' own callback resumed after epoch 2


def test_a_write_that_fails_part_way_keeps_the_previous_checkpoint(tmp_path):
    x, y = data()
    model = tiny_model()
    model.fit(x, y, epochs=1, verbose=0,
              callbacks=[AtomicBackupAndRestore(str(tmp_path), delete_checkpoint=False)])
    before = {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)}
    size = len(before["latest.weights.h5"])
    with file_size_limit(size // 2), pytest.raises(OSError) as raised:
        model.fit(x, y, epochs=2, initial_epoch=1, verbose=0,
                  callbacks=[AtomicBackupAndRestore(str(tmp_path), delete_checkpoint=False)])
    assert raised.value.errno == 27  # EFBIG, what a full disk's ENOSPC is to the writer
    after = {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)}
    assert after == before  # epoch 1's checkpoint, byte for byte, and no temporary file
    resumed = tiny_model()
    history = resumed.fit(x, y, epochs=2, verbose=0, callbacks=[
        AtomicBackupAndRestore(str(tmp_path), delete_checkpoint=False)])
    assert history.epoch == [1]
    np.testing.assert_array_equal(resumed.layers[0].kernel.numpy(),
                                  model.layers[0].kernel.numpy())  # epoch 1's weights


def test_double_checkpoint_is_refused():
    with pytest.raises(ValueError, match="double_checkpoint"):
        AtomicBackupAndRestore("backup", double_checkpoint=True)


def test_atomic_path_keeps_the_compound_suffix(tmp_path):
    for name, suffix in (("latest.weights.h5", ".weights.h5"), ("model.keras", ".keras"),
                         ("notes", "")):
        with atomic_path(tmp_path / name) as temporary:
            assert os.path.basename(temporary).endswith(suffix)
            assert os.path.dirname(temporary) == str(tmp_path)
            open(temporary, "w").close()
        assert (tmp_path / name).exists()
