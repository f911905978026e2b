"""StyleGAN / StyleGAN2: a `GAN` whose generator is style-based, with style mixing regularisation,
the truncation trick and the lazy R1 penalty (Karras et al. 2019, 2020).

The generator is `networks.build_style_generator`: z -> mapping -> w -> synthesis(ws), with one w
per styled layer (`ws` `(B, num_ws, w_dim)`). `GAN.train_step` (TF-only) runs unchanged; this class
changes how training images are generated (`generate`) and adds the R1 term to the critic's loss:

Style mixing regularisation (Karras et al. 2019, section 3.1): for a fraction `p` of the training
images two latents z1, z2 are mapped to w1, w2 and the synthesis network takes w1 before a random
crossover layer c ~ U{1, ..., num_ws - 1} and w2 from c on:

    ws[:, i] = w1 if i < c else w2                  (c = num_ws, i.e. no mixing, with prob. 1 - p)

drawn per example here (the papers' code draws one c per minibatch).

Truncation trick (Karras et al. 2019, section 3.2 and appendix B): `w' = w_avg + psi (w - w_avg)`,
psi = 1 is the plain generator and psi = 0 the "mean face" for every z. `w_avg` is a non-trainable
variable tracked during training by an exponential moving average of the batch mean of w,
`w_avg <- mean_b w + beta (w_avg - mean_b w)`, beta = 0.995 as in StyleGAN2's code, at every
generator call in training mode (the critic steps' fakes and the generator step).

R1 with lazy regularisation (Mescheder et al. 2018; Karras et al. 2020, section 3.1): the critic's
loss gets `(gamma / 2) * k * E_x ||grad_x D(x)||^2` on real images on every k-th discriminator
step only (those whose optimizer `iterations % k == 0`), scaled by k so the penalty's average strength
stays `gamma / 2`. The paper's k = 16.

Path-length regularisation (Karras et al. 2020, section 3.2, equation 4; optional, off by default):
the generator's loss gets `lambda_pl * k_pl * E (||J_w^T y|| - a)^2` on every k_pl-th generator step,
`y ~ N(0, I) / sqrt(H W)` a random image, `a` an exponential moving average of the path lengths
(`a <- a + 0.01 (mean ||J_w^T y|| - a)`); the paper's lambda_pl = 2, k_pl = 4.

Metrics: those of `GAN` plus `r1`: `k * R1` on the steps that compute it and 0 between, so its epoch
mean estimates the mean `E ||grad D(x)||^2`; and `path_length`, the same for the path-length
penalty `E (||J_w^T y|| - a)^2`.

Reference: Karras et al. 2019, "A Style-Based Generator Architecture for Generative Adversarial
Networks"; Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN"; lecture
section "StyleGAN".
"""

import keras
import numpy as np
from keras import ops

from keras_crvae import distribute
from keras_crvae.losses import adversarial
from keras_crvae.models.base import run_network, to_float32, validate_images
from keras_crvae.models.gan import GAN

STYLE_MIXING_PROBABILITY = 0.9  # Karras et al. 2019, Table 2 and appendix C
R1_WEIGHT = 10.0  # gamma: StyleGAN's FFHQ setting (appendix C)
R1_INTERVAL = 16  # StyleGAN2, section 3.1
W_AVERAGE_BETA = 0.995  # StyleGAN2's released code (w_avg_beta)
PATH_LENGTH_INTERVAL = 4  # StyleGAN2, section 3.2 (lazy: every 4 generator steps)
PATH_LENGTH_DECAY = 0.01  # StyleGAN2's code: the moving average `a`
_STYLE_OPTIONS = ("style_mixing_probability", "r1_weight", "r1_interval", "w_average_beta",
                  "path_length_weight", "path_length_interval")


def mixed_styles(first, second, crossover, num_ws):
    """`ws` `(B, num_ws, w_dim)`: `ws[b, i] = first[b]` for `i < crossover[b]`, else `second[b]`.

    Args:
        first, second: `(B, w_dim)` intermediate latents.
        crossover: `(B,)` integers in `[0, num_ws]`; `num_ws` keeps `first` at every layer.
        num_ws: int, the synthesis network's number of styled layers.
    """
    layer_index = ops.arange(num_ws)[None, :, None]
    use_first = ops.less(layer_index, ops.cast(crossover, "int32")[:, None, None])
    return ops.where(use_first, first[:, None, :], second[:, None, :])


def truncate(w, w_average, psi):
    """The truncation trick `w_avg + psi (w - w_avg)` (broadcasts over `w`'s leading axes)."""
    return w_average + psi * (w - w_average)


@keras.saving.register_keras_serializable(package="keras_crvae")
class StyleGAN(GAN):
    """A style-based generator and a discriminator, trained as a `GAN` with style mixing, a tracked
    `w_avg` for truncation and lazy R1 (module docstring).

    Args:
        generator: `keras.Model` from `networks.build_style_generator` (z -> images; layers
            "mapping" and "synthesis").
        discriminator: `keras.Model`, images -> logits or `[logits, features]`; for R1 it must treat
            examples independently (no BatchNorm: e.g. `build_dcgan_discriminator(norm="none")`).
        style_mixing_probability: float in [0, 1], default 0.9.
        r1_weight: float >= 0, default 10 (gamma; 0 turns R1 off).
        r1_interval: int >= 1, default 16 (k of lazy regularisation; 1 is the non-lazy penalty).
        w_average_beta: float in [0, 1), default 0.995.
        path_length_weight: float >= 0, default 0 (off; the paper's lambda_pl = 2).
        path_length_interval: int >= 1, default 4 (k_pl).
        **kwargs: those of `GAN` (`adversarial_loss` default "bce", the non-saturating loss).

    Inputs to `fit`: batches of real images `(B, *image_shape)` in [-1, 1].
    """

    metric_names = GAN.metric_names + ("r1", "path_length")

    def __init__(self, generator, discriminator, style_mixing_probability=STYLE_MIXING_PROBABILITY,
                 r1_weight=R1_WEIGHT, r1_interval=R1_INTERVAL, w_average_beta=W_AVERAGE_BETA,
                 path_length_weight=0.0, path_length_interval=PATH_LENGTH_INTERVAL, **kwargs):
        super().__init__(generator, discriminator, **kwargs)
        if not 0.0 <= float(style_mixing_probability) <= 1.0:
            raise ValueError("`style_mixing_probability` must be in [0, 1], got "
                             f"{style_mixing_probability!r}.")
        for name, value in (("r1_weight", r1_weight), ("path_length_weight", path_length_weight)):
            if not float(value) >= 0:
                raise ValueError(f"`{name}` must be >= 0, got {value!r}.")
        for name, value in (("r1_interval", r1_interval),
                            ("path_length_interval", path_length_interval)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}.")
        if not 0.0 <= float(w_average_beta) < 1.0:
            raise ValueError(f"`w_average_beta` must be in [0, 1), got {w_average_beta!r}.")
        names = [layer.name for layer in generator.layers]
        if "mapping" not in names or "synthesis" not in names:
            raise ValueError("`generator` must have the layers 'mapping' and 'synthesis' "
                             f"(networks.build_style_generator); it has {names}.")
        self.style_mixing_probability = float(style_mixing_probability)
        self.r1_weight = float(r1_weight)
        self.r1_interval = int(r1_interval)
        self.w_average_beta = float(w_average_beta)
        self.path_length_weight = float(path_length_weight)
        self.path_length_interval = int(path_length_interval)
        self.mapping = generator.get_layer("mapping")
        self.synthesis = generator.get_layer("synthesis")
        self.num_ws, self.w_dim = (int(d) for d in self.synthesis.input_shape[1:])
        self.w_average = self.add_weight(name="w_average", shape=(self.w_dim,),
                                         initializer="zeros", trainable=False,
                                         aggregation="only_first_replica")
        self.path_length_mean = self.add_weight(name="path_length_mean", shape=(),
                                                initializer="zeros", trainable=False,
                                                aggregation="only_first_replica")

    def get_config(self):
        config = super().get_config()
        config.update({name: getattr(self, name) for name in _STYLE_OPTIONS})
        return config

    # --- styles ---------------------------------------------------------------------------------

    def map(self, z, training=False):
        """Intermediate latents w `(B, w_dim)` of z `(B, latent_dim)`, float32."""
        return to_float32(self.mapping(z, training=training))

    def mix_styles(self, first, second, crossover):
        """`mixed_styles` with this generator's `num_ws`."""
        return mixed_styles(first, second, crossover, self.num_ws)

    def broadcast_styles(self, w):
        """The same w `(B, w_dim)` for every styled layer: `(B, num_ws, w_dim)`."""
        return ops.repeat(ops.expand_dims(w, 1), self.num_ws, axis=1)

    def synthesize(self, ws, truncation_psi=1.0, training=False):
        """Images `(B, *image_shape)` of ws `(B, num_ws, w_dim)` or w `(B, w_dim)`, truncated."""
        ws = ops.cast(ws, "float32")
        if len(ws.shape) == 2:
            ws = self.broadcast_styles(ws)
        if not (isinstance(truncation_psi, (int, float)) and truncation_psi == 1.0):
            ws = truncate(ws, ops.cast(self.w_average, "float32"), truncation_psi)
        return to_float32(self.synthesis(ws, training=training))

    def _update_w_average(self, w):
        batch_mean = ops.stop_gradient(ops.mean(w, axis=0))
        self.w_average.assign(batch_mean + self.w_average_beta * (self.w_average - batch_mean))

    def generate(self, latents, training):
        """Training images with style mixing; `w_avg` follows w in training mode (module doc)."""
        if not training:
            return super().generate(latents, training)
        w = self.map(latents, training=True)
        self._update_w_average(w)
        if not self.style_mixing_probability:
            return self.synthesize(w, training=True)
        batch_size = ops.shape(latents)[0]
        other_latents, _ = self.draw_latents(batch_size)
        other = self.map(other_latents, training=True)
        draws = distribute.replica_uniform((batch_size,), self.seed_generator, dtype="float32")
        crossover = 1 + ops.cast(ops.floor(distribute.replica_uniform(
            (batch_size,), self.seed_generator, dtype="float32") * (self.num_ws - 1)), "int32")
        crossover = ops.minimum(crossover, self.num_ws - 1)  # a uniform draw of exactly 1.0
        crossover = ops.where(ops.less(draws, self.style_mixing_probability), crossover,
                              self.num_ws)
        return self.synthesize(self.mix_styles(w, other, crossover), training=True)

    # --- R1 -------------------------------------------------------------------------------------

    def critic_terms(self, real, fake, codes=None, epsilon=None, training=True, penalty=True):
        """`GAN.critic_terms` plus the lazy R1 term `r1` (0 on the steps between, and with
        `penalty=False`)."""
        terms = super().critic_terms(real, fake, codes, epsilon, training, penalty)
        terms["r1"] = ops.zeros((), "float32")
        if not (penalty and self.r1_weight):
            return terms
        if self.discriminator_optimizer is None:
            raise RuntimeError("Call `compile()` first: lazy R1 counts the critic's steps.")

        def penalty_now():
            critic = lambda images: self._discriminate(images, training)[0]  # noqa: E731
            return adversarial.r1_penalty(critic, real) * float(self.r1_interval)

        due = ops.equal(self.discriminator_optimizer.iterations % self.r1_interval, 0)
        terms["r1"] = ops.cond(due, penalty_now, lambda: ops.zeros((), "float32"))
        terms["critic_loss"] = terms["critic_loss"] + 0.5 * self.r1_weight * terms["r1"]
        return terms

    # --- path-length regularisation -------------------------------------------------------------

    def path_length_penalty(self, latents):
        """`E (||J_w^T y|| - a)^2` on fresh images of `latents`, updating `a` (TF only)."""
        w = self.map(latents, training=True)
        images_shape = (ops.shape(latents)[0],) + self.image_shape
        pixels = float(self.image_shape[0] * self.image_shape[1])
        image_noise = distribute.replica_normal(images_shape, self.seed_generator,
                                                dtype="float32") / pixels ** 0.5
        lengths = adversarial.path_lengths(
            lambda ws: self.synthesis(ws, training=True), self.broadcast_styles(w), image_noise)
        mean = self.path_length_mean + PATH_LENGTH_DECAY * (
            ops.stop_gradient(ops.mean(lengths)) - self.path_length_mean)
        self.path_length_mean.assign(mean)
        return ops.mean(ops.square(lengths - mean))

    def generator_terms(self, latents, codes=None, real=None, training=True):
        """`GAN.generator_terms` plus the lazy path-length term `path_length` (module docstring)."""
        terms = super().generator_terms(latents, codes, real, training)
        terms["path_length"] = ops.zeros((), "float32")
        if not (training and self.path_length_weight):
            return terms
        interval = self.path_length_interval
        due = ops.equal(self.generator_optimizer.iterations % interval, 0)
        terms["path_length"] = ops.cond(
            due, lambda: self.path_length_penalty(latents) * float(interval),
            lambda: ops.zeros((), "float32"))
        terms["generator_loss"] = (terms["generator_loss"]
                                   + self.path_length_weight * terms["path_length"])
        return terms

    def _update_metrics(self, terms, g_terms, accuracy, updated):
        values = {"r1": terms["r1"], "path_length": g_terms["path_length"]}
        return super()._update_metrics(terms, g_terms, accuracy, updated) | \
            adversarial.update_trackers(
                {name: self.trackers[name] for name in values}, values)

    # --- the public API -------------------------------------------------------------------------

    def decode(self, z, truncation_psi=1.0):
        """Images `(B, *image_shape)` in [-1, 1] of z `(B, latent_dim)`, truncated by psi."""
        if truncation_psi == 1.0:
            return super().decode(z)
        validate_images(z, self.latent_shape, name="z", value_range=None)
        return self.synthesize(run_network(self.mapping, z), truncation_psi)

    def sample(self, num_samples, seed=None, truncation_psi=1.0):
        """Draws `num_samples` images in [-1, 1] from the prior, truncated by psi."""
        if int(num_samples) < 1:
            raise ValueError(f"`num_samples` must be >= 1, got {num_samples}.")
        if seed is None:
            seed = int(np.random.default_rng().integers(2 ** 31))
        return self.decode(self.prior_latents(num_samples, seed=seed), truncation_psi)

    def style_mixing_grid(self, num_sources=4, seed=0, crossovers=None, truncation_psi=1.0):
        """The paper's Figure 3: images of w_A (rows) with layers `i >= c` taken from w_B (columns).

        Args:
            num_sources: int, default 4. Number of row and of column latents.
            seed: int, default 0.
            crossovers: list of ints, default `[num_ws // 4, num_ws // 2, 3 num_ws // 4]` (coarse,
                middle, fine styles from B).
            truncation_psi: float, default 1.

        Returns:
            dict: `rows` `(n, *image_shape)` (A), `columns` `(n, ...)` (B), `mixed`
            `(len(crossovers), n, n, *image_shape)` with `mixed[k, a, b]` = A's styles before
            `crossovers[k]` and B's from it; all NumPy in [-1, 1].
        """
        latents = self.prior_latents(2 * num_sources, seed=seed)
        w = to_float32(run_network(self.mapping, latents))
        w = truncate(w, ops.cast(self.w_average, "float32"), truncation_psi)
        rows_w, columns_w = w[:num_sources], w[num_sources:]
        if crossovers is None:
            crossovers = sorted({max(1, self.num_ws * k // 4) for k in (1, 2, 3)})
        first = ops.repeat(rows_w, num_sources, axis=0)  # (a, b) pairs, a-major
        second = ops.tile(columns_w, (num_sources, 1))
        mixed = []
        for crossover in crossovers:
            cut = ops.full((num_sources * num_sources,), int(crossover), "int32")
            images = self.synthesize(self.mix_styles(first, second, cut))
            mixed.append(ops.convert_to_numpy(images).reshape(
                (num_sources, num_sources) + self.image_shape))
        return {"rows": ops.convert_to_numpy(self.synthesize(rows_w)),
                "columns": ops.convert_to_numpy(self.synthesize(columns_w)),
                "mixed": np.stack(mixed), "crossovers": list(crossovers)}

    def truncation_grid(self, num_latents=8, psis=(1.0, 0.7, 0.5, 0.0), seed=0):
        """`(len(psis), num_latents, *image_shape)` NumPy images: row k at `psis[k]` (Figure 8)."""
        latents = self.prior_latents(num_latents, seed=seed)
        w = run_network(self.mapping, latents)
        return np.stack([ops.convert_to_numpy(self.synthesize(w, float(psi))) for psi in psis])

    def style_grids(self, seed=0, num_sources=7):
        """The figures `ImageGrids` writes every epoch, NumPy images in [-1, 1] in rows of 8:

        - "style_mixing": per crossover a block of `num_sources + 1` rows: a header row (a blank,
          then the sources B) and one row per source A (A, then A's styles before the crossover
          with B's from it): Karras et al. 2019, Figure 3; coarse, middle and fine crossovers.
        - "truncation": rows psi = 1, 0.7, 0.5, 0 of the same 8 latents (Figure 8).
        """
        grid = self.style_mixing_grid(num_sources, seed=seed)
        blank = np.zeros((1,) + self.image_shape, "float32") + self.image_range[0]
        header = np.concatenate([blank, grid["columns"]])
        blocks = []
        for mixed in grid["mixed"]:
            blocks.append(header)
            for row, images in zip(grid["rows"], mixed):
                blocks.append(np.concatenate([row[None], images]))
        truncation = self.truncation_grid(num_sources + 1, seed=seed)
        return {"style_mixing": np.concatenate(blocks),
                "truncation": truncation.reshape((-1,) + self.image_shape)}
