"""MDMA's mean-field attention layers (caloedu.layers.mean_field): what the mask promises, the symmetries of
the generator and critic, the gradient penalty through attention, weight normalisation, configs, size."""

import numpy as np
import pytest
import torch

import caloedu  # noqa: F401  (before keras: selects the torch backend)
import keras
from keras import ops

from caloedu.layers import (
    MDMACriticNetwork,
    MDMAGeneratorNetwork,
    MeanFieldAttentionBlock,
    WeightNormDense,
    masked_mean,
    math_attention,
    mean_field_pooling,
)
from caloedu.testing import to_numpy

B, N, C_N = 3, 12, 6.0
N_REAL = (5, 12, 1)  # a partly padded cloud, a full one, a single hit
HUGE = 1e6
SMALL = dict(units=16, num_heads=4, n_blocks=2, average_multiplicity=C_N)


def cloud(features, seed=0):
    """(x (B, N, features), mask (B, N) with the real hits scattered, not a prefix, condition (B, 2))."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, N, features)).astype("float32")
    mask = np.zeros((B, N), bool)
    for b, n_real in enumerate(N_REAL):
        mask[b, rng.permutation(N)[:n_real]] = True
    return x, mask, rng.uniform(size=(B, 2)).astype("float32")


def huge_padding(x, mask):
    x = x.copy()
    x[~mask] = HUGE
    return x


def networks():
    generator, critic = MDMAGeneratorNetwork(**SMALL), MDMACriticNetwork(**SMALL)
    generator.build()
    critic.build()
    return generator, critic


def test_masked_mean_and_pooling_equal_numpy_and_ignore_padding():
    x, mask, _ = cloud(5)
    mask[0] = False  # an empty cloud: mean 0, not NaN
    weights = mask[..., None].astype("float64")
    expected_mean = (x * weights).sum(1) / np.maximum(weights.sum(1), 1.0)
    expected_pooled = (x * weights).sum(1) / C_N
    x_padded = huge_padding(x, mask)
    x_padded[~mask] = 1e30
    np.testing.assert_allclose(to_numpy(masked_mean(x_padded, mask)), expected_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(to_numpy(mean_field_pooling(x_padded, mask, C_N)), expected_pooled, rtol=1e-5, atol=1e-6)


def test_mean_field_pooling_knows_the_multiplicity_a_mean_does_not():
    x, mask, _ = cloud(5)
    doubled, doubled_mask = np.concatenate([x, x], axis=1), np.concatenate([mask, mask], axis=1)
    np.testing.assert_allclose(to_numpy(masked_mean(doubled, doubled_mask)), to_numpy(masked_mean(x, mask)), atol=1e-6)
    np.testing.assert_allclose(to_numpy(mean_field_pooling(doubled, doubled_mask, C_N)),
                               2 * to_numpy(mean_field_pooling(x, mask, C_N)), rtol=1e-5, atol=1e-6)


def test_generator_is_permutation_equivariant_and_zero_on_padding():
    generator, _ = networks()
    noise, mask, condition = cloud(4)
    perm = np.random.default_rng(1).permutation(N)  # mixes real and padded positions
    out = to_numpy(generator(noise, mask, condition))
    permuted = to_numpy(generator(noise[:, perm], mask[:, perm], condition))
    np.testing.assert_allclose(permuted, out[:, perm], atol=1e-5)
    assert np.all(out[~mask] == 0.0), "padded points must come out as exact zeros"
    assert np.abs(out[mask]).min() > 0.0


def test_critic_score_and_mean_field_are_permutation_invariant():
    _, critic = networks()
    points, mask, condition = cloud(4)
    perm = np.random.default_rng(2).permutation(N)
    score, field = map(to_numpy, critic(points, mask, condition))
    score_p, field_p = map(to_numpy, critic(points[:, perm], mask[:, perm], condition))
    np.testing.assert_allclose(score_p, score, atol=1e-5)
    np.testing.assert_allclose(field_p, field, atol=1e-5)
    assert score.shape == (B, 1) and field.shape == (B, SMALL["units"])


def test_padded_inputs_change_nothing():
    generator, critic = networks()
    x, mask, condition = cloud(4)
    np.testing.assert_array_equal(to_numpy(generator(huge_padding(x, mask), mask, condition)),
                                  to_numpy(generator(x, mask, condition)))
    for padded, plain in zip(critic(huge_padding(x, mask), mask, condition), critic(x, mask, condition)):
        np.testing.assert_allclose(to_numpy(padded), to_numpy(plain), atol=1e-6)
    # the block on its own, whose padded inputs are not zeroed for it: the attention mask has to hold
    block = MeanFieldAttentionBlock(16, num_heads=4)
    h = np.random.default_rng(3).normal(size=(B, N, 16)).astype("float32")
    field = np.random.default_rng(4).normal(size=(B, 16)).astype("float32")
    for padded, plain in zip(block(huge_padding(h, mask), field, mask, condition), block(h, field, mask, condition)):
        np.testing.assert_allclose(to_numpy(padded), to_numpy(plain), rtol=1e-5, atol=1e-5)


def test_attention_weights_are_zero_on_padding_and_sum_to_one():
    generator, critic = networks()
    x, mask, condition = cloud(4)
    for out in (generator(x, mask, condition, return_attention_scores=True),
                critic(x, mask, condition, return_attention_scores=True)):
        weights = out[-1]
        assert len(weights) == SMALL["n_blocks"]
        for w in map(to_numpy, weights):
            assert w.shape == (B, SMALL["num_heads"], 1, N)
            assert np.all(w[np.broadcast_to(~mask[:, None, None, :], w.shape)] == 0.0)
            np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-5)
    # asking for the weights takes the explicit path; the output must not change
    np.testing.assert_allclose(to_numpy(generator(x, mask, condition, return_attention_scores=True)[0]),
                               to_numpy(generator(x, mask, condition)), atol=1e-5)


def test_math_attention_selects_the_math_kernel_and_restores():
    before = torch.backends.cuda.flash_sdp_enabled(), torch.backends.cuda.mem_efficient_sdp_enabled()
    with math_attention():
        assert torch.backends.cuda.math_sdp_enabled()
        assert not torch.backends.cuda.flash_sdp_enabled() and not torch.backends.cuda.mem_efficient_sdp_enabled()
    assert (torch.backends.cuda.flash_sdp_enabled(), torch.backends.cuda.mem_efficient_sdp_enabled()) == before


def test_gradient_penalty_runs_through_the_critic_in_math_attention():
    """WGAN-GP: (||d score / d points|| - 1)^2, differentiated again down to the weights (double backward)."""
    _, critic = networks()
    x, mask, condition = cloud(4)
    points = ops.convert_to_tensor(x).requires_grad_(True)
    with math_attention():  # torch's fused SDPA kernels have no double backward
        score, _ = critic(points, ops.convert_to_tensor(mask), ops.convert_to_tensor(condition))
        (grad,) = torch.autograd.grad(score.sum(), points, create_graph=True)
        penalty = ((torch.sqrt(grad.square().sum(dim=(1, 2)) + 1e-12) - 1.0) ** 2).mean()
        penalty.backward()
    assert torch.isfinite(penalty)
    for weight in critic.trainable_weights:
        if weight.path.endswith("score/bias"):  # a constant shift of the score: no gradient wrt the points
            assert weight.value.grad is None
            continue
        assert weight.value.grad is not None, f"{weight.path} gets no gradient from the penalty"
        assert torch.isfinite(weight.value.grad).all(), weight.path
    total = sum(float(w.value.grad.abs().sum()) for w in critic.trainable_weights if w.value.grad is not None)
    assert total > 0.0


def test_weight_norm_dense_is_g_v_over_norm_and_starts_as_dense():
    x = np.random.default_rng(5).normal(size=(B, 7, 5)).astype("float32")
    layer = WeightNormDense(6)
    layer.build((None, None, 5))
    dense = keras.layers.Dense(6)
    dense.build((None, None, 5))
    dense.set_weights([to_numpy(layer.kernel), to_numpy(layer.bias)])
    np.testing.assert_allclose(to_numpy(layer(x)), to_numpy(dense(x)), rtol=1e-5, atol=1e-6)
    rng = np.random.default_rng(6)
    v, g, b = rng.normal(size=(5, 6)), rng.uniform(0.5, 2.0, size=6), rng.normal(size=6)
    layer.set_weights([v.astype("float32"), g.astype("float32"), b.astype("float32")])
    expected = x @ (g * v / np.linalg.norm(v, axis=0)) + b  # per output unit: norm over the inputs
    np.testing.assert_allclose(to_numpy(layer(x)), expected, rtol=1e-4, atol=1e-5)


def _build(layer, kind):
    if kind == "dense":
        layer.build((None, None, 4))
    else:
        layer.build()
    return layer


def _outputs(layer, kind):
    x, mask, condition = cloud(4)
    if kind == "dense":
        return [layer(x)]
    if kind == "block":
        h = np.random.default_rng(7).normal(size=(B, N, layer.units)).astype("float32")
        field = np.random.default_rng(8).normal(size=(B, layer.units)).astype("float32")
        return list(layer(h, field, mask, condition, return_attention_scores=True))
    out = layer(x, mask, condition)
    return list(out) if isinstance(out, tuple) else [out]


@pytest.mark.parametrize("make, kind", [
    (lambda: WeightNormDense(5, activation="silu"), "dense"),
    (lambda: MeanFieldAttentionBlock(16, num_heads=2, hidden_units=8, weight_norm=True), "block"),
    (lambda: MeanFieldAttentionBlock(16, num_heads=4, update_points=False), "block"),
    (lambda: MDMAGeneratorNetwork(noise_features=4, point_features=3, hidden_units=24, **SMALL), "network"),
    (lambda: MDMACriticNetwork(weight_norm=False, **SMALL), "network"),
    (lambda: MDMACriticNetwork(**SMALL), "network"),
], ids=["dense", "block-wn", "block-last", "generator", "critic-plain", "critic"])
def test_config_round_trip_gives_the_same_layer(make, kind):
    layer = _build(make(), kind)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
    if not clone.built:  # deserialisation builds a layer whose build() keras recorded
        _build(clone, kind)
    clone.set_weights(layer.get_weights())
    for got, want in zip(_outputs(clone, kind), _outputs(layer, kind)):
        np.testing.assert_allclose(to_numpy(got), to_numpy(want), rtol=1e-5, atol=1e-6)


def test_every_sublayer_is_built_by_build():
    for network in networks():
        unbuilt = [layer.path for layer in network._flatten_layers(include_self=True) if not layer.built]
        assert not unbuilt, f"not built by build(): {unbuilt}"


def test_default_sizes_are_about_mdma():
    generator, critic = MDMAGeneratorNetwork(), MDMACriticNetwork()
    generator.build()
    critic.build()
    def trained(network):  # c_N is a weight too, but not a trained one
        return int(sum(np.prod(w.shape) for w in network.trainable_weights))

    total = trained(generator) + trained(critic)
    sizes = f"generator {trained(generator)} + critic {trained(critic)} = {total}"
    assert 40_000 <= total <= 120_000, sizes
    assert (trained(generator), trained(critic)) == (32_452, 32_930), "update the docstrings' counts"


def test_heads_must_divide_the_attention_width():
    with pytest.raises(ValueError, match="multiple of num_heads"):
        MeanFieldAttentionBlock(16, num_heads=3)
    with pytest.raises(ValueError, match="average_multiplicity"):
        MDMAGeneratorNetwork(average_multiplicity=0.0)


def test_masked_attention_pooling_weighs_real_points_only_and_ignores_their_order():
    from caloedu.layers.mean_field import masked_attention_pooling

    rng = np.random.default_rng(4)
    query, keys, values = rng.normal(size=(2, 3)), rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 5, 2))
    mask = np.array([[True, True, True, False, False], [True] * 5])
    keys[0, 3:], values[0, 3:] = 1e6, 1e6  # padding that must not leak
    pooled, weights = (keras.ops.convert_to_numpy(v) for v in masked_attention_pooling(query, keys, values, mask))
    scores = np.einsum("bf,bnf->bn", query, keys[:, :, :]) / np.sqrt(3)
    scores[0, 3:] = -np.inf
    expected = np.exp(scores - scores.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(weights, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(pooled, np.einsum("bn,bnf->bf", expected, np.where(mask[..., None], values, 0)),
                               rtol=1e-5)
    order = np.array([2, 0, 1, 3, 4])
    permuted, _ = masked_attention_pooling(query, keys[:, order], values[:, order], mask[:, order])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(permuted), pooled, rtol=1e-5)
