"""Flows that turn the VAE's diagonal Gaussian posterior into a richer one (`VAE(posterior_flow=)`).

A flow specification is text, so that presets and `crvae train --set posterior_flow=...` can name
it: `"planar:K"`, `"radial:K"` (Rezende & Mohamed 2015, section 4.1) or `"iaf:K"` (Kingma et al.
2016), `K >= 1` steps; None is the plain diagonal Gaussian. Every step is amortised: its
parameters (planar, radial) or its MADE's unmasked input (IAF) come from the context `h(x)`, which
the VAE takes from its encoder (`VAE._flow_context`).
"""

import math

from keras_crvae.layers import BijectorChain, InverseAutoregressiveFlow, PlanarFlow, RadialFlow

POSTERIOR_FLOW_KINDS = ("planar", "radial", "iaf")


def parse_posterior_flow(spec):
    """`"planar:10"` -> `("planar", 10)`; None -> None.

    Raises:
        ValueError: naming `posterior_flow`, the value and what is expected.
    """
    if spec is None:
        return None
    expected = (f"expected None or KIND:K with KIND one of {', '.join(POSTERIOR_FLOW_KINDS)} and "
                "K >= 1 steps, e.g. planar:10")
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ValueError(f"posterior_flow={spec!r}: {expected}")
    kind, steps = spec.split(":")
    if kind not in POSTERIOR_FLOW_KINDS or not steps.isdigit() or int(steps) < 1:
        raise ValueError(f"posterior_flow={spec!r}: {expected}")
    return kind, int(steps)


def default_iaf_hidden_units(latent_shape):
    """One hidden layer of `2 D` units (`D` latent values): every MADE degree occurs twice."""
    return [max(2 * int(math.prod(latent_shape)), 2)]


def build_posterior_flow(spec, latent_shape, context_dim, hidden_units=None, name="posterior_flow"):
    """The `BijectorChain` of a flow specification, built for latents `(batch, *latent_shape)`.

    Args:
        spec: str, `"planar:K"`, `"radial:K"` or `"iaf:K"` (`parse_posterior_flow`).
        latent_shape: tuple, one example's latent shape (flattened inside each step).
        context_dim: int, width of the context `(batch, context_dim)` every step is given.
        hidden_units: list of ints or None, IAF only: the MADE's hidden widths
            (default `default_iaf_hidden_units`).
        name: str.

    Returns:
        A built float32 `BijectorChain`: `forward_and_log_det(z0, context) -> (z_K, sum_k log|det|)`.
        IAF steps alternate the MADE ordering (the paper reverses z between steps).
    """
    kind, steps = parse_posterior_flow(spec)
    if kind == "iaf":
        units = list(hidden_units) if hidden_units else default_iaf_hidden_units(latent_shape)
        bijectors = [InverseAutoregressiveFlow(
            units, context_dim=context_dim,
            ordering="left_to_right" if index % 2 == 0 else "right_to_left",
            dtype="float32", name=f"iaf_{index}") for index in range(steps)]
    else:
        flow_class = PlanarFlow if kind == "planar" else RadialFlow
        bijectors = [flow_class(context_dim=context_dim, dtype="float32", name=f"{kind}_{index}")
                     for index in range(steps)]
    chain = BijectorChain(bijectors, dtype="float32", name=name)
    chain.build((None,) + tuple(latent_shape))
    return chain
