"""tools/benchmarks/kernels.py switches the fast kernels off and back on; op_profile.py (read by
profile_step.py) sorts ops into the parts of a network."""

import pathlib
import sys

import keras
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "benchmarks"))
import kernels  # noqa: E402  (a script's module, not a package)
import op_profile  # noqa: E402  (no absl flags: safe beside other tools' modules)

from keras_crvae import optimizers  # noqa: E402
from keras_crvae.layers import BatchNormalization as FusedBatchNormalization  # noqa: E402
from keras_crvae.layers import SliceCropping2D  # noqa: E402
from keras_crvae.layers import channel_recurrent  # noqa: E402


def test_reference_kernels_switch_each_fast_path_and_restore_it():
    originals = (FusedBatchNormalization._fused_applies, SliceCropping2D.call,
                 channel_recurrent.lstm_unrolls, optimizers.MultiplierAdam._fused_update_applies)
    lstm = keras.layers.LSTM(2, return_sequences=True)
    lstm.build((None, 3, 4))
    with kernels.reference_kernels():
        assert SliceCropping2D.call is keras.layers.Cropping2D.call
        assert not channel_recurrent.lstm_unrolls(lstm)
        layer = FusedBatchNormalization()
        assert not layer._fused_applies(np.zeros((1, 2, 2, 3), "float32"), None)
        assert not optimizers.MultiplierAdam()._fused_update_applies(None, None)
    assert (FusedBatchNormalization._fused_applies, SliceCropping2D.call,
            channel_recurrent.lstm_unrolls,
            optimizers.MultiplierAdam._fused_update_applies) == originals
    assert channel_recurrent.lstm_unrolls(lstm)


def test_reference_kernels_restore_after_an_error_and_refuse_unknown_names():
    with pytest.raises(RuntimeError):
        with kernels.reference_kernels(["crop"]):
            raise RuntimeError("inside")
    assert SliceCropping2D.call is not keras.layers.Cropping2D.call
    with pytest.raises(ValueError, match="Unknown kernel"):
        with kernels.reference_kernels(["winograd"]):
            pass


@pytest.mark.parametrize("op_name, op_type, part", [
    ("mnist_crvae_1/decoder_1/deconv1_1/conv_transpose", "_MklNativeConv2DBackpropInput", "conv"),
    ("mnist_crvae_1/encoder_1/inference_recurrence_1/MatMul", "_MklMatMul", "lstm/recurrence"),
    ("gradient_tape/mnist_crvae_1/decoder_1/bn_conv3_1/FusedBatchNormV3",
     "_MklNativeFusedBatchNormGradV3", "batchnorm"),
    ("mnist_crvae_1/decoder_1/lrelu_conv3_1/LeakyRelu", "LeakyRelu", "activation"),
    ("multiplier_adam/ResourceApplyAdam", "ResourceApplyAdam", "optimizer"),
    ("mnist_crvae_1/Cast_3", "Cast", "cast"),
    ("mnist_crvae_1/Sum", "Sum", "other"),
])
def test_profile_parts(op_name, op_type, part):
    assert op_profile.part_of(op_name, op_type) == part


def test_kernels_context_reads_every_spec():
    for spec in kernels.SPECS:
        with kernels.kernels_context(spec):
            switched = SliceCropping2D.call is keras.layers.Cropping2D.call
        assert switched == (spec in ("reference", "no_crop"))
    with pytest.raises(ValueError, match="Unknown kernels"):
        kernels.kernels_context("no_winograd")
