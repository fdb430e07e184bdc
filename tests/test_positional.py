"""Positional encodings: the formula of Vaswani et al. and the layers that add them."""

import numpy as np
import pytest

import caloedu  # noqa: F401
from caloedu.layers import LearnedPositionalEmbedding, SinusoidalPositionalEncoding, sinusoidal_encoding
from caloedu.testing import to_numpy


def test_sinusoidal_encoding_follows_the_paper():
    pe = sinusoidal_encoding(50, 16)
    assert pe.shape == (50, 16) and pe.dtype == np.float32
    p, i = 7, 3
    np.testing.assert_allclose(pe[p, 2 * i], np.sin(p / 10000 ** (2 * i / 16)), rtol=1e-6)
    np.testing.assert_allclose(pe[p, 2 * i + 1], np.cos(p / 10000 ** (2 * i / 16)), rtol=1e-6)
    np.testing.assert_allclose(pe[0], np.tile([0.0, 1.0], 8))


def test_sinusoidal_shift_is_a_rotation():
    """PE[p + k] is a fixed linear map of PE[p]: the property that lets attention use relative positions."""
    pe = sinusoidal_encoding(64, 8).astype(np.float64)
    k = 5
    solution, *_ = np.linalg.lstsq(pe[:-k], pe[k:], rcond=None)
    np.testing.assert_allclose(pe[:-k] @ solution, pe[k:], atol=1e-5)


def test_odd_depth_is_supported():
    assert sinusoidal_encoding(4, 5).shape == (4, 5)


def test_layers_add_encodings_and_check_length():
    x = np.zeros((2, 10, 8), np.float32)
    out = to_numpy(SinusoidalPositionalEncoding(max_length=16)(x))
    np.testing.assert_allclose(out[1], sinusoidal_encoding(16, 8)[:10])
    learned = LearnedPositionalEmbedding(16)
    assert to_numpy(learned(x)).shape == (2, 10, 8)
    assert len(learned.trainable_weights) == 1
    with pytest.raises(ValueError, match="max_length"):
        SinusoidalPositionalEncoding(max_length=4)(x)
