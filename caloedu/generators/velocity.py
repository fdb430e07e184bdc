"""Velocity networks v(x_t, t, condition) for flow matching: an MLP and a transformer over calorimeter layers.

Both embed the time t and the condition (log incident energy in [0, 1]) with Fourier features
[u, sin(pi 2^k u), cos(pi 2^k u)], k = 0..K-1, so the network can resolve fast changes near t = 0
where the shower's fine structure appears, and inject the embedding in every block (FiLM: a
per-feature scale and shift), which works better than concatenating it to the input once.

call((x (B, D), t (B, 1), condition (B, 1))) -> velocity (B, D).
"""

import math

import keras
from keras import ops

from caloedu.layers import LearnedPositionalEmbedding, TransformerEncoderBlock


@keras.saving.register_keras_serializable(package="caloedu")
class FourierFeatures(keras.layers.Layer):
    """(B, 1) values in about [0, 1] -> (B, 1 + 2 K): [u, sin(pi 2^k u), cos(pi 2^k u)] for k < K."""

    def __init__(self, n_frequencies=6, **kwargs):
        super().__init__(**kwargs)
        self.n_frequencies = int(n_frequencies)

    def call(self, u):
        frequencies = ops.convert_to_tensor([math.pi * 2.0**k for k in range(self.n_frequencies)], dtype=u.dtype)
        angles = u * frequencies  # (B, K)
        return ops.concatenate([u, ops.sin(angles), ops.cos(angles)], axis=-1)

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


@keras.saving.register_keras_serializable(package="caloedu")
class MLPVelocity(keras.layers.Layer):
    """Residual MLP velocity: Dense(hidden) -> n_blocks FiLM residual blocks -> Dense(n_features)."""

    def __init__(self, n_features, hidden_units=512, n_blocks=3, embedding_units=128, n_frequencies=6, **kwargs):
        super().__init__(**kwargs)
        self.n_features, self.hidden_units, self.n_blocks = int(n_features), int(hidden_units), int(n_blocks)
        self.embedding_units, self.n_frequencies = int(embedding_units), int(n_frequencies)
        self.embedding = ConditionEmbedding(embedding_units, n_frequencies, name="embedding")
        self.inputs_dense = keras.layers.Dense(self.hidden_units, name="in")
        self.blocks = [FiLMResidualBlock(self.hidden_units, name=f"block{i}") for i in range(self.n_blocks)]
        self.out_norm = keras.layers.LayerNormalization(name="out_norm")
        self.out = keras.layers.Dense(self.n_features, name="out")

    def build(self, input_shape=None):
        self.embedding.build((None, 1), (None, 1))
        self.inputs_dense.build((None, self.n_features))
        for block in self.blocks:
            block.build((None, self.hidden_units), (None, self.embedding_units))
        self.out_norm.build((None, self.hidden_units))
        self.out.build((None, self.hidden_units))

    def call(self, inputs):
        x, t, condition = inputs
        embedding = self.embedding(t, condition)  # (B, E)
        h = self.inputs_dense(x)  # (B, H)
        for block in self.blocks:
            h = block(h, embedding)
        return self.out(self.out_norm(h))  # (B, D)

    def get_config(self):
        return {**super().get_config(), "n_features": self.n_features, "hidden_units": self.hidden_units,
                "n_blocks": self.n_blocks, "embedding_units": self.embedding_units,
                "n_frequencies": self.n_frequencies}


@keras.saving.register_keras_serializable(package="caloedu")
class LayerTransformerVelocity(keras.layers.Layer):
    """Transformer velocity over calorimeter layers: one token per layer.

    x (B, D) is read as ``n_scalars`` leading per-layer numbers (0, or n_layers u-variables: token l
    gets u_l) followed by the voxels in layer order (n_layers x voxels_per_layer). Each token (the
    layer's voxels [+ its scalar]) is projected to d_model, gets a learned layer-position embedding and
    the embedded (t, condition); a conditioning token is prepended; pre-norm encoder blocks follow; each
    layer token is projected back to its voxels.
    """

    def __init__(self, n_layers, voxels_per_layer, n_scalars=0, d_model=128, num_heads=4, d_ff=256,
                 num_blocks=3, embedding_units=128, n_frequencies=6, **kwargs):
        super().__init__(**kwargs)
        self.n_layers, self.voxels_per_layer, self.n_scalars = int(n_layers), int(voxels_per_layer), int(n_scalars)
        if self.n_scalars not in (0, self.n_layers):
            raise ValueError(f"n_scalars must be 0 or n_layers={self.n_layers}, got {n_scalars}.")
        self.d_model, self.num_heads = int(d_model), int(num_heads)
        self.d_ff, self.num_blocks = int(d_ff), int(num_blocks)
        self.embedding_units, self.n_frequencies = int(embedding_units), int(n_frequencies)
        self.token_features = self.voxels_per_layer + (1 if self.n_scalars else 0)
        self.embedding = ConditionEmbedding(embedding_units, n_frequencies, name="embedding")
        self.tokens_in = keras.layers.Dense(self.d_model, name="tokens_in")
        self.condition_token = keras.layers.Dense(self.d_model, name="condition_token")
        self.positions = LearnedPositionalEmbedding(self.n_layers + 1, name="layer_positions")
        self.blocks = [TransformerEncoderBlock(self.num_heads, self.d_ff, norm_first=True, activation="gelu",
                                               name=f"encoder{i}") for i in range(self.num_blocks)]
        self.films = [FiLMResidualBlock(self.d_model, name=f"film{i}") for i in range(self.num_blocks)]
        self.out_norm = keras.layers.LayerNormalization(name="out_norm")
        self.tokens_out = keras.layers.Dense(self.token_features, name="tokens_out")

    def build(self, input_shape=None):
        tokens = (None, self.n_layers + 1, self.d_model)
        self.embedding.build((None, 1), (None, 1))
        self.tokens_in.build((None, self.n_layers, self.token_features))
        self.condition_token.build((None, self.embedding_units))
        self.positions.build(tokens)
        for block, film in zip(self.blocks, self.films):
            block.build(tokens)
            film.build(tokens, (None, self.embedding_units))
        self.out_norm.build(tokens)
        self.tokens_out.build((None, self.n_layers, self.d_model))

    def call(self, inputs):
        x, t, condition = inputs
        batch = ops.shape(x)[0]
        voxels = ops.reshape(x[:, self.n_scalars:], (batch, self.n_layers, self.voxels_per_layer))
        if self.n_scalars:
            voxels = ops.concatenate([x[:, :self.n_scalars, None], voxels], axis=-1)  # (B, L, V + 1)
        embedding = self.embedding(t, condition)  # (B, E)
        tokens = ops.concatenate([self.condition_token(embedding)[:, None, :], self.tokens_in(voxels)], axis=1)
        h = self.positions(tokens)  # (B, L + 1, d_model)
        for block, film in zip(self.blocks, self.films):
            h = block(film(h, embedding))
        out = self.tokens_out(self.out_norm(h[:, 1:]))  # (B, L, V [+ 1])
        if self.n_scalars:
            return ops.concatenate([out[:, :, 0], ops.reshape(out[:, :, 1:], (batch, -1))], axis=-1)
        return ops.reshape(out, (batch, -1))

    def get_config(self):
        return {**super().get_config(), "n_layers": self.n_layers, "voxels_per_layer": self.voxels_per_layer,
                "n_scalars": self.n_scalars, "d_model": self.d_model, "num_heads": self.num_heads,
                "d_ff": self.d_ff, "num_blocks": self.num_blocks, "embedding_units": self.embedding_units,
                "n_frequencies": self.n_frequencies}
