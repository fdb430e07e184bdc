"""Conditioning layers shared by the generators: Fourier features of a scalar in [0, 1] (the flow time t, the
log incident energy), a small MLP embedding of both, and a FiLM residual block that injects the embedding.

Fourier features [u, sin(pi 2^k u), cos(pi 2^k u)], k = 0 .. K-1, let a network resolve fast changes of a
slow input (near t = 0 a shower's fine structure appears); injecting the embedding in every block (FiLM: a
per-feature scale and shift) works better than concatenating it to the input once.
"""

import math

import keras
from keras import ops


def fourier_features(t, n_frequencies=6):
    """(B, 1) values in about [0, 1] -> (B, 1 + 2K): [t, sin(pi 2^k t) for k < K, cos(pi 2^k t) for k < K]."""
    t = ops.convert_to_tensor(t)
    frequencies = ops.convert_to_tensor([math.pi * 2.0**k for k in range(n_frequencies)], dtype=t.dtype)
    angles = t * frequencies  # (B, K)
    return ops.concatenate([t, ops.sin(angles), ops.cos(angles)], axis=-1)


@keras.saving.register_keras_serializable(package="caloedu")
class FourierFeatures(keras.layers.Layer):
    """(B, 1) values in about [0, 1] -> (B, 1 + 2 K): [u, sin(pi 2^k u), cos(pi 2^k u)] for k < K."""

    def __init__(self, n_frequencies=6, **kwargs):
        super().__init__(**kwargs)
        self.n_frequencies = int(n_frequencies)

    def call(self, u):
        return fourier_features(u, self.n_frequencies)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 1 + 2 * self.n_frequencies)

    def get_config(self):
        return {**super().get_config(), "n_frequencies": self.n_frequencies}


@keras.saving.register_keras_serializable(package="caloedu")
class ConditionEmbedding(keras.layers.Layer):
    """(t (B, 1), condition (B, 1)) -> (B, units): Fourier features of both through a small MLP."""

    def __init__(self, units=128, n_frequencies=6, **kwargs):
        super().__init__(**kwargs)
        self.units, self.n_frequencies = int(units), int(n_frequencies)
        self.fourier = FourierFeatures(n_frequencies)
        self.hidden = keras.layers.Dense(self.units, activation="silu", name="hidden")
        self.out = keras.layers.Dense(self.units, activation="silu", name="out")

    def build(self, t_shape, condition_shape=None):
        self.fourier.build(t_shape)
        self.hidden.build((None, 2 * (1 + 2 * self.n_frequencies)))
        self.out.build((None, self.units))

    def call(self, t, condition):
        features = ops.concatenate([self.fourier(t), self.fourier(condition)], axis=-1)
        return self.out(self.hidden(features))

    def get_config(self):
        return {**super().get_config(), "units": self.units, "n_frequencies": self.n_frequencies}


@keras.saving.register_keras_serializable(package="caloedu")
class FiLMResidualBlock(keras.layers.Layer):
    """h + Dense(silu(Dense(LayerNorm(h) (1 + scale) + shift))), with (scale, shift) from the embedding."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.norm = keras.layers.LayerNormalization(name="norm")
        self.film = keras.layers.Dense(2 * self.units, kernel_initializer="zeros", name="film")
        self.inner = keras.layers.Dense(self.units, activation="silu", name="inner")
        self.outer = keras.layers.Dense(self.units, name="outer")

    def build(self, h_shape, embedding_shape=None):
        self.norm.build(h_shape)
        self.film.build(embedding_shape)
        self.inner.build(h_shape)
        self.outer.build(h_shape)

    def call(self, h, embedding):
        scale, shift = ops.split(self.film(embedding), 2, axis=-1)
        if len(h.shape) == 3:  # tokens (B, T, units): one FiLM for all tokens
            scale, shift = scale[:, None, :], shift[:, None, :]
        return h + self.outer(self.inner(self.norm(h) * (1.0 + scale) + shift))

    def get_config(self):
        return {**super().get_config(), "units": self.units}
