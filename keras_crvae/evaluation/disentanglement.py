"""Disentanglement metrics: the beta-VAE metric, the FactorVAE metric and the mutual information gap.

Each metric is a function of `encode` and a factor `source`:

- `encode(observations) -> (N, d)` array: the representation of a batch of observations (for a
  VAE, the posterior means; `mean_encoder(model)` makes one).
- `source`: an object with `factor_sizes` (tuple of K ints), `sample_factors(num, rng)` -> int
  array `(num, K)` of factor indices, and `observations(factors)` -> the observations of those
  factors (`keras_crvae.data.sprites.ProceduralSprites` draws sprites).

Metrics (scores in [0, 1], higher is more disentangled):

- `beta_vae_metric` (Higgins et al. 2017, section 3; the lecture's "Disentangling metric"): a
  training point draws a factor `y`, then `L` pairs of factor vectors that agree on `y` and are
  otherwise independent; its input is `z_diff = 1/L sum_l |z(x_l1) - z(x_l2)|`, its label `y`. The
  score is the test accuracy of a linear softmax classifier (low VC dimension) on such points.
- `factor_vae_metric` (Kim & Mnih 2018, section 4): with every latent divided by its standard
  deviation over the data, a vote fixes one factor `k` for `L` samples and takes the latent of least
  variance, `d*`; a majority-vote classifier maps each `d*` to its most frequent `k`; the score is
  its accuracy on held-out votes. Collapsed latents (std below `prune_threshold`) never vote.
- `mutual_information_gap` (Chen et al. 2018, section 5, with the histogram estimator of Locatello
  et al. 2019): latents discretised into `num_bins` equal-width bins, `I(z_j; v_k)` from counts;
  MIG = mean over factors of `(I_(1) - I_(2)) / H(v_k)`, the gap between the two latents most
  informative about factor `k`, normalised by its entropy.

The lecture's orthogonal-matrix argument (Locatello et al. 2019) is the reason the tests score a
hand-built encoder `z = v` (1.0 on all three) against a rotation `z = A v` of it (lower): the rotated
code has the same factorised prior but mixes the factors.
"""

import numpy as np


def mean_encoder(model, batch_size=256):
    """`encode` of a VAE-family model: images -> posterior means `(N, prod(latent_shape))` (NumPy)."""
    from keras import ops

    def encode(images):
        images = np.asarray(images, np.float32)
        means = []
        for start in range(0, len(images), batch_size):
            mean, _ = model.encode(images[start:start + batch_size])
            means.append(np.asarray(ops.convert_to_numpy(mean)).reshape(len(mean), -1))
        return np.concatenate(means)

    return encode


def _check_source(source):
    for name in ("factor_sizes", "sample_factors", "observations"):
        if not hasattr(source, name):
            raise TypeError(f"`source` needs `{name}` (see the module docstring); got "
                            f"{type(source).__name__}.")


def _encode(encode, source, factors):
    codes = np.asarray(encode(source.observations(factors)), np.float64)
    return codes.reshape(len(factors), -1)


def fit_linear_classifier(inputs, labels, num_classes, steps=500, learning_rate=0.5,
                          l2=1e-4):
    """A multinomial logistic regression fitted by full-batch gradient descent.

    Inputs are standardised with the training statistics. Returns `predict(inputs) -> labels`.
    """
    inputs = np.asarray(inputs, np.float64)
    mean, std = inputs.mean(0), inputs.std(0) + 1e-8
    x = (inputs - mean) / std
    x = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    targets = np.eye(num_classes)[labels]
    weights = np.zeros((x.shape[1], num_classes))
    for _ in range(int(steps)):
        logits = x @ weights
        logits -= logits.max(1, keepdims=True)
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(1, keepdims=True)
        gradient = x.T @ (probabilities - targets) / len(x) + l2 * weights
        weights -= learning_rate * gradient

    def predict(new_inputs):
        z = (np.asarray(new_inputs, np.float64) - mean) / std
        z = np.concatenate([z, np.ones((len(z), 1))], axis=1)
        return np.argmax(z @ weights, axis=1)

    return predict


def _beta_vae_points(encode, source, num_points, pairs_per_point, rng):
    num_factors = len(source.factor_sizes)
    labels = rng.integers(0, num_factors, num_points)
    first = source.sample_factors(num_points * pairs_per_point, rng)
    second = source.sample_factors(num_points * pairs_per_point, rng)
    shared = np.repeat(labels, pairs_per_point)
    rows = np.arange(len(first))
    second[rows, shared] = first[rows, shared]
    difference = np.abs(_encode(encode, source, first) - _encode(encode, source, second))
    return difference.reshape(num_points, pairs_per_point, -1).mean(1), labels


def beta_vae_metric(encode, source, num_train=500, num_eval=300, pairs_per_point=64, seed=0):
    """The beta-VAE disentanglement metric (Higgins et al. 2017): linear-classifier accuracy.

    Args:
        encode: function, observations -> representations `(N, d)`.
        source: factor source (module docstring).
        num_train, num_eval: int, default 500 / 300. Training and test points (Higgins et al. and
            disentanglement_lib use 10,000 / 5,000; each point costs `2 * pairs_per_point`
            encodings).
        pairs_per_point: int, default 64. `L` (disentanglement_lib's batch size 64).
        seed: int, default 0.

    Returns:
        dict: `score` (test accuracy), `train_accuracy`, `num_train`, `num_eval`.
    """
    _check_source(source)
    rng = np.random.default_rng(seed)
    train_x, train_y = _beta_vae_points(encode, source, int(num_train), int(pairs_per_point), rng)
    eval_x, eval_y = _beta_vae_points(encode, source, int(num_eval), int(pairs_per_point), rng)
    predict = fit_linear_classifier(train_x, train_y, len(source.factor_sizes))
    return {"score": float(np.mean(predict(eval_x) == eval_y)),
            "train_accuracy": float(np.mean(predict(train_x) == train_y)),
            "num_train": int(num_train), "num_eval": int(num_eval)}


def _factor_vae_votes(encode, source, num_votes, samples_per_vote, scale, active, rng):
    num_factors = len(source.factor_sizes)
    factors_fixed = rng.integers(0, num_factors, num_votes)
    factors = source.sample_factors(num_votes * samples_per_vote, rng)
    for vote, k in enumerate(factors_fixed):
        rows = slice(vote * samples_per_vote, (vote + 1) * samples_per_vote)
        factors[rows, k] = factors[vote * samples_per_vote, k]
    codes = _encode(encode, source, factors) / scale
    variances = codes.reshape(num_votes, samples_per_vote, -1).var(axis=1, ddof=1)
    variances[:, ~active] = np.inf
    return np.argmin(variances, axis=1), factors_fixed


def factor_vae_metric(encode, source, num_train=500, num_eval=300, samples_per_vote=64,
                      num_variance_estimate=5000, prune_threshold=0.05, seed=0):
    """The FactorVAE disentanglement metric (Kim & Mnih 2018): majority-vote accuracy.

    Args:
        encode, source: as `beta_vae_metric`.
        num_train, num_eval: int, default 500 / 300 votes (disentanglement_lib: 10,000 / 5,000).
        samples_per_vote: int, default 64. `L` (disentanglement_lib's batch size 64).
        num_variance_estimate: int, default 5000. Samples for each latent's standard deviation.
        prune_threshold: float, default 0.05. Latents whose standard deviation over the data is
            below this are collapsed and excluded (the paper prunes collapsed dimensions).
        seed: int, default 0.

    Returns:
        dict: `score`, `train_accuracy`, `num_active` (latents that vote), `num_train`,
        `num_eval`. A code with no active latent scores 0.
    """
    _check_source(source)
    rng = np.random.default_rng(seed)
    codes = _encode(encode, source, source.sample_factors(int(num_variance_estimate), rng))
    scale = codes.std(axis=0, ddof=1)
    active = scale >= float(prune_threshold)
    result = {"num_active": int(active.sum()), "num_train": int(num_train),
              "num_eval": int(num_eval)}
    if not np.any(active):
        return {**result, "score": 0.0, "train_accuracy": 0.0}
    scale = np.where(active, scale, 1.0)
    train_d, train_k = _factor_vae_votes(encode, source, int(num_train), int(samples_per_vote),
                                         scale, active, rng)
    eval_d, eval_k = _factor_vae_votes(encode, source, int(num_eval), int(samples_per_vote),
                                       scale, active, rng)
    num_factors = len(source.factor_sizes)
    votes = np.zeros((codes.shape[1], num_factors), np.int64)
    np.add.at(votes, (train_d, train_k), 1)
    classifier = np.argmax(votes, axis=1)  # latent -> its most frequent factor
    return {**result, "score": float(np.mean(classifier[eval_d] == eval_k)),
            "train_accuracy": float(np.mean(classifier[train_d] == train_k))}


def discretize(codes, num_bins=20):
    """Each column of `codes` `(N, d)` into `num_bins` equal-width bins over its range -> ints."""
    codes = np.asarray(codes, np.float64)
    binned = np.zeros(codes.shape, np.int64)
    for j in range(codes.shape[1]):
        edges = np.histogram_bin_edges(codes[:, j], bins=int(num_bins))
        binned[:, j] = np.digitize(codes[:, j], edges[1:-1])
    return binned


def _entropy(labels):
    counts = np.bincount(labels)
    p = counts[counts > 0] / len(labels)
    return float(-(p * np.log(p)).sum())


def mutual_information(a, b):
    """Empirical mutual information (nats) of two integer label arrays of one length."""
    a = np.unique(a, return_inverse=True)[1]
    b = np.unique(b, return_inverse=True)[1]
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1.0)
    joint /= len(a)
    outer = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True)
    nonzero = joint > 0
    return float((joint[nonzero] * np.log(joint[nonzero] / outer[nonzero])).sum())


def mutual_information_gap(encode, source, num_samples=5000, num_bins=20, seed=0):
    """MIG (Chen et al. 2018): mean normalised gap between the two latents most informative
    about each factor.

    Args:
        encode, source: as `beta_vae_metric`.
        num_samples: int, default 5000 (disentanglement_lib: 10,000).
        num_bins: int, default 20 (disentanglement_lib's histogram discretisation).
        seed: int, default 0.

    Returns:
        dict: `score` (MIG), `per_factor` gaps, `mutual_information` `(d, K)` nats,
        `factor_entropy` `(K,)` nats. Needs at least 2 latents.
    """
    _check_source(source)
    rng = np.random.default_rng(seed)
    factors = source.sample_factors(int(num_samples), rng)
    codes = discretize(_encode(encode, source, factors), num_bins)
    if codes.shape[1] < 2:
        raise ValueError("MIG needs a representation with at least 2 latents.")
    information = np.array([[mutual_information(codes[:, j], factors[:, k])
                             for k in range(factors.shape[1])] for j in range(codes.shape[1])])
    entropy = np.array([_entropy(np.unique(factors[:, k], return_inverse=True)[1])
                        for k in range(factors.shape[1])])
    top_two = np.sort(information, axis=0)[::-1][:2]
    gaps = (top_two[0] - top_two[1]) / np.maximum(entropy, 1e-12)
    return {"score": float(gaps.mean()), "per_factor": gaps.tolist(),
            "mutual_information": information.tolist(), "factor_entropy": entropy.tolist()}


def disentanglement_scores(encode, source, seed=0, **sizes):
    """The three metrics in one dict `{beta_vae, factor_vae, mig}` (each metric's dict).

    `sizes` may set `num_train`, `num_eval` (both vote metrics) and `num_samples` (MIG).
    """
    votes = {key: sizes[key] for key in ("num_train", "num_eval") if key in sizes}
    mig = {key: sizes[key] for key in ("num_samples",) if key in sizes}
    return {"beta_vae": beta_vae_metric(encode, source, seed=seed, **votes),
            "factor_vae": factor_vae_metric(encode, source, seed=seed, **votes),
            "mig": mutual_information_gap(encode, source, seed=seed, **mig)}
