"""Velocity networks v(x_t, t, condition) for flow matching: an MLP, a transformer over calorimeter layers, and a
mean-field network over rings of voxels.

All embed the time t and the condition (log incident energy in [0, 1]) with `ConditionEmbedding` and inject it
in every block (FiLM, `caloedu.layers.conditioning`). Sizes use one vocabulary: ``units`` the width of the main
representation, ``n_blocks`` the number of blocks, ``n_heads`` attention heads, ``*_units`` other widths.

call((x (B, D), t (B, 1), condition (B, 1))) -> velocity (B, D) (or, for prediction="data", the shower x_0_hat).
"""

import keras
from keras import ops

from caloedu.layers import LearnedPositionalEmbedding, TransformerEncoderBlock
from caloedu.layers.conditioning import ConditionEmbedding, FiLMResidualBlock


@keras.saving.register_keras_serializable(package="caloedu")
class MLPVelocity(keras.layers.Layer):
    """Residual MLP velocity: Dense(units) -> n_blocks FiLM residual blocks -> Dense(n_features),
    plus (``feature_skip``) a per-feature linear term g(t, condition) * x_t.

    Why the skip: near t = 0 each feature's velocity depends on that feature's own x_t (for a voxel
    that is empty in the data, v = (x_t - x_empty) / t exactly), and a thousand voxels do not fit through
    a few hundred hidden units: without it the MLP learns the energy variables but leaves the voxels near
    their starting noise (README, "Results"). With Gaussian data the optimal velocity is exactly such a
    per-feature linear function of x_t.
    """

    def __init__(self, n_features, units=512, n_blocks=3, embedding_units=128, n_frequencies=6,
                 feature_skip=True, **kwargs):
        super().__init__(**kwargs)
        self.n_features, self.units, self.n_blocks = int(n_features), int(units), int(n_blocks)
        self.embedding_units, self.n_frequencies = int(embedding_units), int(n_frequencies)
        self.feature_skip = bool(feature_skip)
        self.embedding = ConditionEmbedding(embedding_units, n_frequencies, name="embedding")
        self.skip_gate = keras.layers.Dense(self.n_features, kernel_initializer="zeros", name="skip_gate") \
            if self.feature_skip else None
        self.inputs_dense = keras.layers.Dense(self.units, name="in")
        self.blocks = [FiLMResidualBlock(self.units, name=f"block{i}") for i in range(self.n_blocks)]
        self.out_norm = keras.layers.LayerNormalization(name="out_norm")
        self.out = keras.layers.Dense(self.n_features, name="out")

    def build(self, input_shape=None):
        self.embedding.build((None, 1), (None, 1))
        self.inputs_dense.build((None, self.n_features))
        for block in self.blocks:
            block.build((None, self.units), (None, self.embedding_units))
        self.out_norm.build((None, self.units))
        self.out.build((None, self.units))
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
        return {**super().get_config(), "n_features": self.n_features, "units": self.units,
                "n_blocks": self.n_blocks, "embedding_units": self.embedding_units,
                "n_frequencies": self.n_frequencies, "feature_skip": self.feature_skip}


@keras.saving.register_keras_serializable(package="caloedu")
class LayerTransformerVelocity(keras.layers.Layer):
    """Transformer velocity over calorimeter layers: one token per layer.

    x (B, D) is read as ``n_scalars`` leading per-layer numbers (0, or n_layers u-variables: token l
    gets u_l) followed by the voxels in layer order (n_layers x voxels_per_layer). Each token (the
    layer's voxels [+ its scalar]) is projected to ``units``, gets a learned layer-position embedding and
    the embedded (t, condition); a conditioning token is prepended; pre-norm encoder blocks follow; each
    layer token is projected back to its voxels. ``units`` is the token width (d_model).
    """

    def __init__(self, n_layers, voxels_per_layer, n_scalars=0, units=128, n_heads=4, ff_units=256,
                 n_blocks=3, embedding_units=128, n_frequencies=6, **kwargs):
        super().__init__(**kwargs)
        self.n_layers, self.voxels_per_layer, self.n_scalars = int(n_layers), int(voxels_per_layer), int(n_scalars)
        if self.n_scalars not in (0, self.n_layers):
            raise ValueError(f"n_scalars must be 0 or n_layers={self.n_layers}, got {n_scalars}.")
        self.units, self.n_heads = int(units), int(n_heads)
        self.ff_units, self.n_blocks = int(ff_units), int(n_blocks)
        self.embedding_units, self.n_frequencies = int(embedding_units), int(n_frequencies)
        self.token_features = self.voxels_per_layer + (1 if self.n_scalars else 0)
        self.embedding = ConditionEmbedding(embedding_units, n_frequencies, name="embedding")
        self.tokens_in = keras.layers.Dense(self.units, name="tokens_in")
        self.condition_token = keras.layers.Dense(self.units, name="condition_token")
        self.positions = LearnedPositionalEmbedding(self.n_layers + 1, name="layer_positions")
        self.blocks = [TransformerEncoderBlock(self.n_heads, self.ff_units, norm_first=True, activation="gelu",
                                               name=f"encoder{i}") for i in range(self.n_blocks)]
        self.films = [FiLMResidualBlock(self.units, name=f"film{i}") for i in range(self.n_blocks)]
        self.out_norm = keras.layers.LayerNormalization(name="out_norm")
        self.tokens_out = keras.layers.Dense(self.token_features, name="tokens_out")

    def build(self, input_shape=None):
        tokens = (None, self.n_layers + 1, self.units)
        self.embedding.build((None, 1), (None, 1))
        self.tokens_in.build((None, self.n_layers, self.token_features))
        self.condition_token.build((None, self.embedding_units))
        self.positions.build(tokens)
        for block, film in zip(self.blocks, self.films):
            block.build(tokens)
            film.build(tokens, (None, self.embedding_units))
        self.out_norm.build(tokens)
        self.tokens_out.build((None, self.n_layers, self.units))

    def call(self, inputs):
        x, t, condition = inputs
        batch = ops.shape(x)[0]
        voxels = ops.reshape(x[:, self.n_scalars:], (batch, self.n_layers, self.voxels_per_layer))
        if self.n_scalars:
            voxels = ops.concatenate([x[:, :self.n_scalars, None], voxels], axis=-1)  # (B, L, V + 1)
        embedding = self.embedding(t, condition)  # (B, E)
        tokens = ops.concatenate([self.condition_token(embedding)[:, None, :], self.tokens_in(voxels)], axis=1)
        h = self.positions(tokens)  # (B, L + 1, units)
        for block, film in zip(self.blocks, self.films):
            h = block(film(h, embedding))
        out = self.tokens_out(self.out_norm(h[:, 1:]))  # (B, L, V [+ 1])
        if self.n_scalars:
            return ops.concatenate([out[:, :, 0], ops.reshape(out[:, :, 1:], (batch, -1))], axis=-1)
        return ops.reshape(out, (batch, -1))

    def get_config(self):
        return {**super().get_config(), "n_layers": self.n_layers, "voxels_per_layer": self.voxels_per_layer,
                "n_scalars": self.n_scalars, "units": self.units, "n_heads": self.n_heads,
                "ff_units": self.ff_units, "n_blocks": self.n_blocks, "embedding_units": self.embedding_units,
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
