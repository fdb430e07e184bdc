"""Every layer and the Transformer survive a .keras save and load with the same outputs."""

import caloedu  # noqa: F401  (before keras: selects the torch backend)
import keras
import numpy as np
import pytest

from caloedu import layers
from caloedu.models import Transformer
from caloedu.testing import to_numpy

RNG = np.random.default_rng(2)


def round_trip(model, tmp_path):
    path = tmp_path / "model.keras"
    model.save(path)
    return keras.saving.load_model(path)


@pytest.mark.parametrize(
    "make_layer",
    [
        lambda: layers.MultiHeadAttention(2, 4),
        lambda: layers.SinusoidalPositionalEncoding(32),
        lambda: layers.LearnedPositionalEmbedding(32),
        lambda: layers.TransformerEncoderBlock(2, 16, dropout=0.1, norm_first=True),
        lambda: layers.FeedForward(16, activation="gelu"),
    ],
    ids=["mha", "sinusoidal", "learned", "encoder", "ffn"],
)
def test_layer_round_trip(make_layer, tmp_path):
    inputs = keras.Input((6, 8))
    model = keras.Model(inputs, make_layer()(inputs))
    x = RNG.normal(size=(3, 6, 8)).astype(np.float32)
    reloaded = round_trip(model, tmp_path)
    np.testing.assert_allclose(to_numpy(reloaded(x)), to_numpy(model(x)), rtol=1e-6, atol=1e-6)


def test_decoder_block_round_trip(tmp_path):
    x_in, m_in = keras.Input((5, 8)), keras.Input((7, 8))
    model = keras.Model([x_in, m_in], layers.TransformerDecoderBlock(2, 16)(x_in, m_in))
    x, m = RNG.normal(size=(2, 5, 8)).astype(np.float32), RNG.normal(size=(2, 7, 8)).astype(np.float32)
    reloaded = round_trip(model, tmp_path)
    np.testing.assert_allclose(to_numpy(reloaded([x, m])), to_numpy(model([x, m])), rtol=1e-6, atol=1e-6)


def test_layer_configs_rebuild_the_same_layer():
    block = layers.TransformerDecoderBlock(4, 64, dropout=0.2, norm_first=True, activation="gelu")
    clone = layers.TransformerDecoderBlock.from_config(block.get_config())
    assert clone.get_config() == block.get_config()


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_round_trip_and_resume(norm_first, tmp_path):
    model = Transformer(10, 12, 8, d_model=16, num_heads=2, d_ff=32, num_layers=1, norm_first=norm_first)
    source = RNG.integers(1, 10, size=(4, 6))
    target = RNG.integers(1, 12, size=(4, 7))
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit((source, target), target, epochs=1, verbose=0)
    reloaded = round_trip(model, tmp_path)
    np.testing.assert_allclose(to_numpy(reloaded((source, target))), to_numpy(model((source, target))),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(reloaded.greedy_decode(source, 1, 4), model.greedy_decode(source, 1, 4))
    reloaded.fit((source, target), target, epochs=1, verbose=0)  # the optimizer state came along
    assert reloaded.optimizer.iterations.numpy() == 2
