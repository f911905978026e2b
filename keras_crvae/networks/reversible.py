"""An i-RevNet-style classifier: a bijective feature extractor and a final projection
(Jacobsen, Smeulders & Oyallon, "i-RevNet: Deep Invertible Networks", ICLR 2018, section 3).

Everything up to the projection is invertible (`layers.InvertibleFeatureExtractor.inverse`), so the
features keep all the information of the image; only the head (global average pooling and a
Dense layer, the paper's final projection) discards any.
"""

import keras

from keras_crvae.layers.reversible import InvertibleFeatureExtractor


def build_irevnet_classifier(input_shape=(28, 28, 1), num_outputs=10, num_stages=2,
                             blocks_per_stage=2, hidden_channels=32, recompute_gradients=True,
                             name="irevnet"):
    """Images `(B, *input_shape)` -> logits `(B, num_outputs)` through invertible features.

    Args:
        input_shape: tuple `(H, W, C)`, H and W divisible by `2**num_stages`.
        num_outputs: int, default 10.
        num_stages: int, default 2. Space-to-depth down-samplings (each a `ReversibleStack`).
        blocks_per_stage: int, default 2.
        hidden_channels: int, default 32. Width of the residual functions F and G.
        recompute_gradients: bool, default True. The RevNet backward pass (memory flat in depth).
        name: str.

    Returns:
        `keras.Model`; its layer "features" is the `InvertibleFeatureExtractor`.
    """
    images = keras.Input(tuple(input_shape), name="images")
    features = InvertibleFeatureExtractor(num_stages, blocks_per_stage, hidden_channels,
                                          recompute_gradients=recompute_gradients,
                                          name="features")(images)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    logits = keras.layers.Dense(int(num_outputs), name="projection")(pooled)
    return keras.Model(images, logits, name=name)
