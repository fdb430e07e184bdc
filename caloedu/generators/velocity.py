"""Velocity networks v(x_t, t, condition) for flow matching: an MLP, a transformer over calorimeter layers, and a
mean-field network over rings of voxels.

All embed the time t and the condition (log incident energy in [0, 1]) with Fourier features
[u, sin(pi 2^k u), cos(pi 2^k u)], k = 0..K-1, so the network can resolve fast changes near t = 0
where the shower's fine structure appears, and inject the embedding in every block (FiLM: a
per-feature scale and shift), which works better than concatenating it to the input once.

call((x (B, D), t (B, 1), condition (B, 1))) -> velocity (B, D) (or, for prediction="data", the shower x_0_hat).
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
    """Residual MLP velocity: Dense(hidden) -> n_blocks FiLM residual blocks -> Dense(n_features),
    plus (``feature_skip``) a per-feature linear term g(t, condition) * x_t.

    Why the skip: near t = 0 each feature's velocity depends on that feature's own x_t (for a voxel
    that is empty in the data, v = (x_t - x_empty) / t exactly), and 960 voxels do not fit through a
    512-unit hidden layer. Without it the MLP learnt the 12 energy variables but left the voxels close
    to their starting noise (measured: generated voxel features had the quantiles of N(0, 1)). With
    Gaussian data the optimal velocity is exactly such a per-feature linear function of x_t.
    """

    def __init__(self, n_features, hidden_units=512, n_blocks=3, embedding_units=128, n_frequencies=6,
                 feature_skip=True, **kwargs):
        super().__init__(**kwargs)
        self.n_features, self.hidden_units, self.n_blocks = int(n_features), int(hidden_units), int(n_blocks)
        self.embedding_units, self.n_frequencies = int(embedding_units), int(n_frequencies)
        self.feature_skip = bool(feature_skip)
        self.embedding = ConditionEmbedding(embedding_units, n_frequencies, name="embedding")
        self.skip_gate = keras.layers.Dense(self.n_features, kernel_initializer="zeros", name="skip_gate") \
            if self.feature_skip else None
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
        if self.skip_gate is not None:
            self.skip_gate.build((None, self.embedding_units))

    def call(self, inputs):
        x, t, condition = inputs
        embedding = self.embedding(t, condition)  # (B, E)
        h = self.inputs_dense(x)  # (B, H)
        for block in self.blocks:
            h = block(h, embedding)
        velocity = self.out(self.out_norm(h))  # (B, D)
        if self.skip_gate is not None:
            velocity = velocity + self.skip_gate(embedding) * x
        return velocity

    def get_config(self):
        return {**super().get_config(), "n_features": self.n_features, "hidden_units": self.hidden_units,
                "n_blocks": self.n_blocks, "embedding_units": self.embedding_units,
                "n_frequencies": self.n_frequencies, "feature_skip": self.feature_skip}


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


@keras.saving.register_keras_serializable(package="caloedu")
class MeanFieldBlock(keras.layers.Layer):
    """One block of `RingMeanFieldVelocity`: the global state reads the mean ring of every layer, then
    every ring token is updated from itself, its layer's mean ring and the global state.

    call(h (B, L, A, units), g (B, global_units), embedding (B, E)) -> (h, g), same shapes.
    """

    def __init__(self, units, global_units, **kwargs):
        super().__init__(**kwargs)
        self.units, self.global_units = int(units), int(global_units)
        self.layer_norm = keras.layers.LayerNormalization(name="layer_norm")
        self.global_hidden = keras.layers.Dense(self.global_units, activation="silu", name="global_hidden")
        self.global_out = keras.layers.Dense(self.global_units, name="global_out")
        self.from_layer = keras.layers.Dense(self.units, name="from_layer")
        self.from_global = keras.layers.Dense(self.units, name="from_global")
        self.ring = FiLMResidualBlock(self.units, name="ring")

    def build(self, h_shape, g_shape=None, embedding_shape=None):
        n_layers = h_shape[1]
        self.layer_norm.build((None, n_layers, self.units))
        self.global_hidden.build((None, n_layers * self.units + self.global_units))
        self.global_out.build((None, self.global_units))
        self.from_layer.build((None, n_layers, self.units))
        self.from_global.build((None, self.global_units))
        self.ring.build((None, None, self.units), embedding_shape)

    def call(self, h, g, embedding):
        batch, n_layers, n_alpha = ops.shape(h)[0], ops.shape(h)[1], ops.shape(h)[2]
        layer_means = self.layer_norm(ops.mean(h, axis=2))  # (B, L, units): the mean ring of each layer
        g = g + self.global_out(self.global_hidden(
            ops.concatenate([ops.reshape(layer_means, (batch, -1)), g], axis=-1)))
        context = self.from_layer(layer_means)[:, :, None, :] + self.from_global(g)[:, None, None, :]
        tokens = ops.reshape(h + context, (batch, -1, self.units))  # (B, L A, units)
        h = h + ops.reshape(self.ring(tokens, embedding) - tokens, (batch, n_layers, n_alpha, self.units))
        return h, g

    def get_config(self):
        return {**super().get_config(), "units": self.units, "global_units": self.global_units}


@keras.saving.register_keras_serializable(package="caloedu")
class RingMeanFieldVelocity(keras.layers.Layer):
    """Velocity over ring tokens with shared weights: one token per (layer, angular bin) holding that
    ring's radial voxels, and a mean-field context (each layer's mean ring and a global state).

    Why: given the shower's few global properties (energy, depth of the maximum, layer energies),
    the voxels of a calorimeter shower fluctuate almost independently, and all angular bins of a
    layer are alike. Shared ring weights see L x A examples per shower instead of one, and the mean
    over a layer's rings (the 'mean field', as in MDMA's mean-field attention) carries the global
    information at a cost linear in the number of rings. No angular position is given to the tokens,
    so apart from the per-voxel skip gate (which starts at zero) the network is symmetric under
    rotations of the shower, as the detector is.

    x (B, D) is ``n_scalars`` global numbers (the u-variables, or none) followed by the voxels in
    CaloChallenge order (radial fastest, then angle, then layer). call((x, t, condition)) -> (B, D).
    """

    def __init__(self, n_layers, n_alpha, n_radial, n_scalars=0, units=64, n_blocks=3, global_units=256,
                 embedding_units=128, n_frequencies=6, **kwargs):
        super().__init__(**kwargs)
        self.n_layers, self.n_alpha, self.n_radial = int(n_layers), int(n_alpha), int(n_radial)
        self.n_scalars, self.units, self.n_blocks = int(n_scalars), int(units), int(n_blocks)
        self.global_units = int(global_units)
        self.embedding_units, self.n_frequencies = int(embedding_units), int(n_frequencies)
        self.n_features = self.n_scalars + self.n_layers * self.n_alpha * self.n_radial
        self.embedding = ConditionEmbedding(embedding_units, n_frequencies, name="embedding")
        self.ring_in = keras.layers.Dense(self.units, name="ring_in")
        self.global_in = keras.layers.Dense(self.global_units, name="global_in")
        self.blocks = [MeanFieldBlock(self.units, self.global_units, name=f"block{i}") for i in range(self.n_blocks)]
        self.out_norm = keras.layers.LayerNormalization(name="out_norm")
        self.ring_out = keras.layers.Dense(self.n_radial, name="ring_out")
        self.scalars_out = keras.layers.Dense(self.n_scalars, name="scalars_out") if self.n_scalars else None
        self.skip_gate = keras.layers.Dense(self.n_features, kernel_initializer="zeros", name="skip_gate")

    def build(self, input_shape=None):
        self.embedding.build((None, 1), (None, 1))
        self.layer_embedding = self.add_weight(shape=(self.n_layers, self.units), initializer="zeros",
                                               name="layer_embedding")
        self.ring_in.build((None, self.n_layers, self.n_alpha, self.n_radial))
        self.global_in.build((None, self.n_scalars + self.embedding_units))
        for block in self.blocks:
            block.build((None, self.n_layers, self.n_alpha, self.units), (None, self.global_units),
                        (None, self.embedding_units))
        self.out_norm.build((None, self.n_layers, self.n_alpha, self.units))
        self.ring_out.build((None, self.n_layers, self.n_alpha, self.units))
        if self.scalars_out is not None:
            self.scalars_out.build((None, self.global_units))
        self.skip_gate.build((None, self.embedding_units))

    def call(self, inputs):
        x, t, condition = inputs
        batch = ops.shape(x)[0]
        embedding = self.embedding(t, condition)  # (B, E)
        rings = ops.reshape(x[:, self.n_scalars:], (batch, self.n_layers, self.n_alpha, self.n_radial))
        h = self.ring_in(rings) + self.layer_embedding[None, :, None, :]  # (B, L, A, units)
        g = self.global_in(ops.concatenate([x[:, :self.n_scalars], embedding], axis=-1))  # (B, G)
        for block in self.blocks:
            h, g = block(h, g, embedding)
        voxels = ops.reshape(self.ring_out(self.out_norm(h)), (batch, -1))
        velocity = ops.concatenate([self.scalars_out(g), voxels], axis=-1) if self.n_scalars else voxels
        return velocity + self.skip_gate(embedding) * x  # per-feature skip, see MLPVelocity

    def get_config(self):
        return {**super().get_config(), "n_layers": self.n_layers, "n_alpha": self.n_alpha,
                "n_radial": self.n_radial, "n_scalars": self.n_scalars, "units": self.units,
                "n_blocks": self.n_blocks, "global_units": self.global_units,
                "embedding_units": self.embedding_units, "n_frequencies": self.n_frequencies}
