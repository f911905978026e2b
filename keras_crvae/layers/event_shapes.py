"""Shape helpers the flow layers share (see `keras_crvae.layers.bijector`)."""


def positions_per_example(x):
    """Positions per example that share one per-channel map: H*W for images `(B, H, W, C)`, 1 for
    vectors `(B, C)` (a per-channel layer's log-det is this times the per-position one)."""
    count = 1
    for dimension in x.shape[1:-1]:
        count *= int(dimension)
    return count


def build_for(layer, x):
    """Builds `layer` for `x`'s shape if it is not built yet: `forward_and_log_det` and
    `inverse_and_log_det` may be called before (or instead of) `__call__`, which builds."""
    if not layer.built:
        layer.build(tuple(x.shape))
