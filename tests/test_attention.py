"""Attention against torch's own implementations (oracle tests) and the properties masks promise."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import caloedu  # noqa: F401  (selects the torch backend)
from caloedu.layers import (
    MultiHeadAttention,
    causal_mask,
    merge_heads,
    padding_mask,
    scaled_dot_product_attention,
    split_heads,
    stable_softmax,
)
from caloedu.testing import to_numpy, copy_mha_from_torch

RNG = np.random.default_rng(0)


def random_mask(shape):
    mask = RNG.random(shape) > 0.4
    mask[..., 0] = True  # every query keeps at least one key
    return mask


@pytest.mark.parametrize("batch_shape", [(), (3,), (2, 4)])
def test_explicit_attention_equals_torch_sdpa(batch_shape):
    q = RNG.normal(size=(*batch_shape, 5, 8)).astype(np.float32)
    k = RNG.normal(size=(*batch_shape, 7, 8)).astype(np.float32)
    v = RNG.normal(size=(*batch_shape, 7, 6)).astype(np.float32)
    mask = random_mask((*batch_shape, 5, 7))
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    ref = F.scaled_dot_product_attention(torch.tensor(q), torch.tensor(k), torch.tensor(v), attn_mask=torch.tensor(mask))
    np.testing.assert_allclose(to_numpy(out), ref.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(to_numpy(weights).sum(-1), 1.0, rtol=1e-6)
    assert np.all(to_numpy(weights)[~np.broadcast_to(mask, weights.shape)] == 0.0), "masked keys must get weight 0"


def test_attention_without_mask_and_with_causal_mask_equals_torch():
    q, k, v = (RNG.normal(size=(2, 6, 4)).astype(np.float32) for _ in range(3))
    out, _ = scaled_dot_product_attention(q, k, v)
    ref = F.scaled_dot_product_attention(*map(torch.tensor, (q, k, v)))
    np.testing.assert_allclose(to_numpy(out), ref.numpy(), rtol=1e-5, atol=1e-6)
    out, _ = scaled_dot_product_attention(q, k, v, causal_mask(6))
    ref = F.scaled_dot_product_attention(*map(torch.tensor, (q, k, v)), is_causal=True)
    np.testing.assert_allclose(to_numpy(out), ref.numpy(), rtol=1e-5, atol=1e-6)


def test_stable_softmax_handles_huge_scores():
    x = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, 0.0, 1000.0]], dtype=np.float32)
    y = to_numpy(stable_softmax(x))
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, torch.softmax(torch.tensor(x), -1).numpy(), rtol=1e-6)


def test_masks_shapes_and_meaning():
    m = to_numpy(causal_mask(4))
    assert m.dtype == bool and np.array_equal(m, np.tril(np.ones((4, 4), bool)))
    tokens = np.array([[5, 3, 0, 0], [1, 2, 3, 4]])
    p = to_numpy(padding_mask(tokens))
    assert p.shape == (2, 1, 4)
    assert np.array_equal(p[:, 0], tokens != 0)


def test_split_and_merge_heads_are_inverse_and_slice_features_per_head():
    x = RNG.normal(size=(2, 5, 12)).astype(np.float32)
    heads = to_numpy(split_heads(x, 3))
    assert heads.shape == (2, 3, 5, 4)
    np.testing.assert_array_equal(heads[:, 1], x[:, :, 4:8])  # head h owns features h*d..(h+1)*d
    np.testing.assert_array_equal(to_numpy(merge_heads(heads)), x)


@pytest.mark.parametrize("cross", [False, True])
def test_multi_head_attention_equals_torch_multihead_attention(cross):
    torch.manual_seed(0)
    d_model, heads = 16, 4
    ref = torch.nn.MultiheadAttention(d_model, heads, batch_first=True).eval()
    layer = MultiHeadAttention(heads, d_model // heads)
    query = RNG.normal(size=(3, 5, d_model)).astype(np.float32)
    memory = RNG.normal(size=(3, 7, d_model)).astype(np.float32) if cross else query
    layer(query, memory)
    copy_mha_from_torch(layer, ref)
    key_valid = np.ones((3, memory.shape[1]), bool)
    key_valid[0, -2:] = False  # padding in the first sequence
    ours = layer(query, memory, attention_mask=key_valid[:, None, :])
    theirs, _ = ref(*map(torch.tensor, (query, memory, memory)), key_padding_mask=torch.tensor(~key_valid))
    np.testing.assert_allclose(to_numpy(ours), theirs.detach().numpy(), rtol=1e-5, atol=1e-5)
    # The explicit path (asked for the weights) gives the same output and torch's averaged weights.
    ours2, weights = layer(query, memory, attention_mask=key_valid[:, None, :], return_attention_scores=True)
    _, their_weights = ref(*map(torch.tensor, (query, memory, memory)), key_padding_mask=torch.tensor(~key_valid))
    np.testing.assert_allclose(to_numpy(ours2), to_numpy(ours), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(to_numpy(weights).mean(1), their_weights.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_fused_and_explicit_paths_agree_with_causal_mask():
    layer = MultiHeadAttention(2, 4)
    x = RNG.normal(size=(2, 6, 8)).astype(np.float32)
    fused = layer(x, x, use_causal_mask=True)
    explicit, weights = layer(x, x, use_causal_mask=True, return_attention_scores=True)
    np.testing.assert_allclose(to_numpy(fused), to_numpy(explicit), rtol=1e-5, atol=1e-6)
    assert np.all(np.triu(to_numpy(weights), k=1) == 0)


@pytest.mark.parametrize("scores", [False, True])
def test_causal_mask_leaks_nothing_from_the_future(scores):
    """Output at position i must not depend on inputs at positions j > i (checked with gradients)."""
    layer = MultiHeadAttention(2, 4)
    x = torch.tensor(RNG.normal(size=(1, 6, 8)).astype(np.float32), requires_grad=True)
    out = layer(x, x, use_causal_mask=True, return_attention_scores=scores)
    out = out[0] if scores else out
    for i in range(6):
        (grad,) = torch.autograd.grad(out[0, i].sum(), x, retain_graph=True)
        assert torch.all(grad[0, i + 1:] == 0), f"position {i} sees the future"
        assert torch.any(grad[0, : i + 1] != 0)


def test_padded_keys_are_ignored():
    layer = MultiHeadAttention(2, 4)
    x = RNG.normal(size=(2, 6, 8)).astype(np.float32)
    valid = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], bool)
    out = to_numpy(layer(x, x, attention_mask=valid[:, None, :]))
    changed = x.copy()
    changed[0, 4:] = 100 * RNG.normal(size=(2, 8))  # garbage in the padding
    out2 = to_numpy(layer(changed, changed, attention_mask=valid[:, None, :]))
    np.testing.assert_allclose(out2[0, :4], out[0, :4], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out2[1], out[1], rtol=1e-6)


def test_bad_mha_arguments_raise_value_error():
    with pytest.raises(ValueError, match="positive"):
        MultiHeadAttention(0, 4)
