"""Encoder and decoder blocks against torch.nn.TransformerEncoderLayer / TransformerDecoderLayer with
copied weights, and the symmetry self-attention has without positions."""

import numpy as np
import pytest
import torch

import caloedu  # noqa: F401
from caloedu.layers import TransformerDecoderBlock, TransformerEncoderBlock, causal_mask
from caloedu.testing import copy_block_from_torch, to_numpy

RNG = np.random.default_rng(1)
D_MODEL, HEADS, D_FF = 16, 4, 32


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_block_equals_torch_encoder_layer(norm_first):
    torch.manual_seed(0)
    ref = torch.nn.TransformerEncoderLayer(D_MODEL, HEADS, D_FF, dropout=0.0, batch_first=True,
                                           norm_first=norm_first).eval()
    block = TransformerEncoderBlock(HEADS, D_FF, norm_first=norm_first)
    x = RNG.normal(size=(3, 6, D_MODEL)).astype(np.float32)
    block(x)
    copy_block_from_torch(block, ref)
    valid = np.ones((3, 6), bool)
    valid[1, 4:] = False
    ours = to_numpy(block(x, attention_mask=valid[:, None, :]))
    theirs = ref(torch.tensor(x), src_key_padding_mask=torch.tensor(~valid)).detach().numpy()
    # torch's fast path returns zeros at padded positions; compare the real tokens.
    np.testing.assert_allclose(ours[valid], theirs[valid], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_block_equals_torch_decoder_layer(norm_first):
    torch.manual_seed(0)
    ref = torch.nn.TransformerDecoderLayer(D_MODEL, HEADS, D_FF, dropout=0.0, batch_first=True,
                                           norm_first=norm_first).eval()
    block = TransformerDecoderBlock(HEADS, D_FF, norm_first=norm_first)
    x = RNG.normal(size=(2, 5, D_MODEL)).astype(np.float32)
    memory = RNG.normal(size=(2, 7, D_MODEL)).astype(np.float32)
    block(x, memory)
    copy_block_from_torch(block, ref)
    memory_valid = np.ones((2, 7), bool)
    memory_valid[0, 5:] = False
    ours = to_numpy(block(x, memory, memory_mask=memory_valid[:, None, :], use_causal_mask=True))
    theirs = ref(torch.tensor(x), torch.tensor(memory), tgt_mask=torch.tensor(~to_numpy(causal_mask(5))),
                 memory_key_padding_mask=torch.tensor(~memory_valid), tgt_is_causal=True).detach().numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_self_attention_without_positions_is_permutation_equivariant():
    block = TransformerEncoderBlock(HEADS, D_FF)
    x = RNG.normal(size=(2, 7, D_MODEL)).astype(np.float32)
    perm = RNG.permutation(7)
    out = to_numpy(block(x))
    out_perm = to_numpy(block(x[:, perm]))
    np.testing.assert_allclose(out_perm, out[:, perm], rtol=1e-5, atol=1e-5)


def test_decoder_causal_mask_leaks_nothing_from_the_future():
    block = TransformerDecoderBlock(HEADS, D_FF)
    x = RNG.normal(size=(1, 6, D_MODEL)).astype(np.float32)
    memory = RNG.normal(size=(1, 4, D_MODEL)).astype(np.float32)
    out = to_numpy(block(x, memory))
    changed = x.copy()
    changed[0, 3:] += 10.0  # change the future of position 2
    out2 = to_numpy(block(changed, memory))
    np.testing.assert_allclose(out2[0, :3], out[0, :3], rtol=1e-5, atol=1e-6)
    assert not np.allclose(out2[0, 3:], out[0, 3:])


def test_d_model_not_divisible_by_heads_is_a_clear_error():
    with pytest.raises(ValueError, match="divisible"):
        TransformerEncoderBlock(3, 8)(np.zeros((1, 2, 16), np.float32))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_blocks_run_on_cuda():
    block = TransformerEncoderBlock(HEADS, D_FF)
    out = block(torch.randn(2, 5, D_MODEL, device="cuda"))
    assert out.device.type == "cuda"
