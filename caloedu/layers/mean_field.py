"""MDMA's mean-field attention on point clouds (Buss, Kasieczka, Krücker et al., "Attention to Mean-Fields for
Calorimeter Simulation"; code kaechb/MDMA): the blocks of its generator and critic.

Each hit interacts with the shower through one vector, the mean field x̄, never with the other hits directly:

    x̄' = x̄ + MLP(Attention(q = LayerNorm(x̄), K = V = hits), condition)     the field reads the hits
    x_i' = x_i + ψ(x_i, x̄', condition)                                   each hit reads the field

so a block costs O(N) in the number of hits N instead of self-attention's O(N²). Points are (B, N, F) with a
mask (B, N), True = a real hit; padded points never influence a real output and come out as exact zeros.
The generator is permutation equivariant in the hits, the critic (and its mean field) invariant.
"""

import contextlib

import keras
from keras import ops
from torch.nn.attention import SDPBackend, sdpa_kernel

from caloedu.layers.attention import MultiHeadAttention, scaled_dot_product_attention

LEAKY_SLOPE = 0.01  # torch's LeakyReLU default, as in MDMA


def _leaky(x):
    return ops.leaky_relu(x, negative_slope=LEAKY_SLOPE)


def _real(h, mask):
    """h with padded rows set to 0: a product with the mask (one op; a `where` against zeros costs three times
    as much on a CPU, where these are the largest tensors of a step). Padding holds finite values (zeros from
    the representation, zeros from every block), so nothing infinite is multiplied by 0."""
    return h * ops.cast(mask, h.dtype)[..., None]


def masked_mean(h, mask):
    """(B, N, F) features, (B, N) bool mask -> (B, F): the mean over real points (count clipped at 1)."""
    h = ops.convert_to_tensor(h)
    n_real = ops.sum(ops.cast(mask, h.dtype), axis=1, keepdims=True)  # (B, 1)
    return ops.sum(_real(h, mask), axis=1) / ops.maximum(n_real, 1.0)


def mean_field_pooling(h, mask, average_multiplicity):
    """MDMA's initial mean field: (B, N, F), (B, N) -> (B, F) = sum over real points / c_N.

    c_N (``average_multiplicity``) is a constant, the training set's average number of hits, not the shower's
    own count: a mean would give a shower of 100 hits and one of 700 with the same hits the same field, while
    sum / c_N grows with the multiplicity, so the field knows how many hits it has to describe.
    """
    if isinstance(average_multiplicity, (int, float)) and average_multiplicity <= 0:
        raise ValueError(f"average_multiplicity must be positive, got {average_multiplicity}.")
    h = ops.convert_to_tensor(h)
    return ops.sum(_real(h, mask), axis=1) / average_multiplicity


def masked_attention_pooling(query, keys, values, mask):
    """One query per shower attends over its real points (single-head cross-attention, the pooling step of
    a mean-field block): the output is a weighted mean of the values, weights softmax(q k_i / sqrt(d)) over
    the real points only.

    Args:
        query: (B, F) (the mean field).  keys: (B, N, F).  values: (B, N, F_v).  mask: (B, N) bool, True = real.
    Returns:
        pooled (B, F_v) and weights (B, N): 0 on padding, summing to 1 over the real points; both unchanged
        when the points are permuted (with their mask). A shower without a real point gets uniform weights
        over its padding (finite, not NaN; the masked scores are large negative numbers, not -inf).
    """
    pooled, weights = scaled_dot_product_attention(ops.convert_to_tensor(query)[:, None, :], keys, values,
                                                   ops.cast(mask, "bool")[:, None, :])
    return pooled[:, 0], weights[:, 0]


@contextlib.contextmanager
def math_attention():
    """Make torch's scaled_dot_product_attention use its plain math kernel inside the block.

    Why: the fused kernels (flash attention for CPU, memory-efficient attention on CUDA) have no double
    backward, and a WGAN gradient penalty differentiates d score / d points once more. caloedu's
    `MultiHeadAttention` calls the fused kernel (keras.ops.dot_product_attention -> torch SDPA) whenever the
    weights are not asked for, so every plain critic call does; the explicit path (weights returned) is not
    affected. This also covers keras' own MultiHeadAttention. (With no mask on CUDA keras may force flash
    attention itself, overriding this context; the mean-field blocks always pass a padding mask.)
    """
    with sdpa_kernel(SDPBackend.MATH):
        yield


@keras.saving.register_keras_serializable(package="caloedu")
class WeightNormDense(keras.layers.Layer):
    """Weight-normalised Dense (Salimans & Kingma 2016): y = act(x (g v / ||v||) + b), (..., d_in) -> (..., units).

    ||v|| is the norm of each output unit's column of v (d_in, units); the gain g (units,) starts at ||v||,
    so a fresh layer computes the same as a Dense with kernel v. MDMA normalises its critic this way:
    the length and the direction of each weight vector learn separately, which steadies the critic.
    (Keras 3 has no WeightNormalization wrapper.)
    """

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", epsilon=1e-12, **kwargs):
        super().__init__(**kwargs)
        self.units, self.use_bias, self.epsilon = int(units), bool(use_bias), float(epsilon)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(input_shape[-1], self.units),
                                      initializer=self.kernel_initializer)  # v
        self.gain = self.add_weight(name="gain", shape=(self.units,), initializer="ones")  # g
        self.gain.assign(self._kernel_norm())
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer=self.bias_initializer) \
            if self.use_bias else None

    def _kernel_norm(self):
        return ops.sqrt(ops.sum(ops.square(self.kernel), axis=0) + self.epsilon)  # (units,)

    def call(self, x):
        y = ops.matmul(x, self.kernel * (self.gain / self._kernel_norm()))
        if self.bias is not None:
            y = y + self.bias
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "use_bias": self.use_bias, "epsilon": self.epsilon,
                "activation": keras.activations.serialize(self.activation),
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer)}


def _dense(units, weight_norm, name):
    return WeightNormDense(units, name=name) if weight_norm else keras.layers.Dense(units, name=name)


@keras.saving.register_keras_serializable(package="caloedu")
class MeanFieldAttentionBlock(keras.layers.Layer):
    """One MDMA block: the mean field attends to the points, then every point is updated from the new field.

    1. φ: points -> hidden (point-wise);  2. LayerNorm(Dense(x̄)) is the single query;
    3. multi-head cross-attention over the real points (padded keys get weight 0);
    4. x̄ += MLP(attention output, condition)   (condition: energy and multiplicity);
    5. x_i += ψ(φ(x_i), x̄, condition)  point-wise, then padded points are zeroed.

    Args: units (width of points and field), num_heads, condition_width, hidden_units (width of the
    attention, default units; a multiple of num_heads), weight_norm (every Dense a `WeightNormDense`, as in
    the critic; the attention's projections stay plain), update_points (False skips step 5: a critic's last
    block, whose points no output reads).
    call(points_h (B, N, units), mean_field (B, units), mask (B, N) bool, condition (B, condition_width),
         return_attention_scores=False) -> (points_h, mean_field) [, weights (B, num_heads, 1, N)].
    """

    def __init__(self, units, num_heads=4, condition_width=2, hidden_units=None, weight_norm=False,
                 update_points=True, **kwargs):
        super().__init__(**kwargs)
        self.units, self.num_heads, self.condition_width = int(units), int(num_heads), int(condition_width)
        self.hidden_units = int(hidden_units or units)
        self.weight_norm, self.update_points = bool(weight_norm), bool(update_points)
        if self.hidden_units % self.num_heads:
            raise ValueError(f"hidden_units={self.hidden_units} must be a multiple of num_heads={self.num_heads}.")
        hidden = self.hidden_units
        self.point_in = _dense(hidden, weight_norm, "point_in")  # φ
        self.field_in = _dense(hidden, weight_norm, "field_in")
        self.field_norm = keras.layers.LayerNormalization(name="field_norm")
        self.attention = MultiHeadAttention(self.num_heads, hidden // self.num_heads, name="attention")
        self.field_hidden = _dense(hidden, weight_norm, "field_hidden")
        self.field_out = _dense(self.units, weight_norm, "field_out")
        self.point_out = _dense(self.units, weight_norm, "point_out") if self.update_points else None  # ψ

    def build(self, points_h_shape=None, mean_field_shape=None, mask_shape=None, condition_shape=None):
        units, hidden, width = self.units, self.hidden_units, self.condition_width
        self.point_in.build((None, None, units))
        self.field_in.build((None, units))
        self.field_norm.build((None, hidden))
        self.attention.build((None, 1, hidden), (None, None, hidden))
        self.field_hidden.build((None, hidden + width))
        self.field_out.build((None, hidden))
        if self.point_out is not None:
            self.point_out.build((None, None, hidden + units + width))

    def call(self, points_h, mean_field, mask, condition, return_attention_scores=False):
        mask = ops.cast(mask, "bool")
        h = _real(self.point_in(_leaky(points_h)), mask)  # (B, N, hidden)
        query = self.field_norm(self.field_in(_leaky(mean_field)))[:, None, :]  # (B, 1, hidden)
        attended = self.attention(query, h, attention_mask=mask[:, None, :],  # mask (B, 1, N): keys only
                                  return_attention_scores=return_attention_scores)
        attended, weights = attended if return_attention_scores else (attended, None)  # (B, 1, hidden)
        context = _leaky(self.field_hidden(ops.concatenate([attended[:, 0], condition], axis=-1)))
        mean_field = mean_field + self.field_out(context)  # (B, units)
        if self.point_out is not None:
            batch, n_points = ops.shape(h)[0], ops.shape(h)[1]
            field_and_condition = ops.broadcast_to(ops.concatenate([mean_field, condition], axis=-1)[:, None, :],
                                                   (batch, n_points, self.units + self.condition_width))
            points_h = points_h + self.point_out(_leaky(ops.concatenate([h, field_and_condition], axis=-1)))
        points_h = _real(points_h, mask)  # (B, N, units)
        return (points_h, mean_field, weights) if return_attention_scores else (points_h, mean_field)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "num_heads": self.num_heads,
                "condition_width": self.condition_width, "hidden_units": self.hidden_units,
                "weight_norm": self.weight_norm, "update_points": self.update_points}


class _MeanFieldNetwork(keras.layers.Layer):
    """Shared trunk: embed the points, pool the initial mean field (`mean_field_pooling`), run the blocks."""

    last_block_updates_points = True

    def __init__(self, in_features, point_features, units, hidden_units, num_heads, n_blocks, condition_width,
                 average_multiplicity, weight_norm, **kwargs):
        super().__init__(**kwargs)
        if average_multiplicity <= 0:
            raise ValueError(f"average_multiplicity must be positive, got {average_multiplicity}.")
        self.in_features, self.point_features = int(in_features), int(point_features)
        self.units, self.num_heads, self.n_blocks = int(units), int(num_heads), int(n_blocks)
        self.hidden_units = int(hidden_units or units)
        self.condition_width, self.average_multiplicity = int(condition_width), float(average_multiplicity)
        self.weight_norm = bool(weight_norm)
        self.embed = _dense(self.units, weight_norm, "embed")  # Φ
        self.blocks = [MeanFieldAttentionBlock(
            self.units, self.num_heads, self.condition_width, self.hidden_units, weight_norm,
            update_points=self.last_block_updates_points or i < self.n_blocks - 1, name=f"block{i}")
            for i in range(self.n_blocks)]

    def build(self, points_shape=None, mask_shape=None, condition_shape=None):
        self.embed.build((None, None, self.in_features))
        for block in self.blocks:
            block.build()
        # c_N as a (non-trained) weight: a generator learns it from its training showers after the network is
        # made (``multiplicity.assign``), and the .keras file keeps it with the other weights.
        self.multiplicity = self.add_weight(shape=(), initializer=keras.initializers.Constant(
            self.average_multiplicity), trainable=False, name="average_multiplicity")

    def _trunk(self, x, mask, condition, return_attention_scores):
        mask = ops.cast(mask, "bool")
        h = _real(_leaky(self.embed(_real(x, mask))), mask)  # (B, N, units)
        mean_field = mean_field_pooling(h, mask, self.multiplicity)  # (B, units)
        all_weights = []
        for block in self.blocks:
            out = block(h, mean_field, mask, condition, return_attention_scores=return_attention_scores)
            h, mean_field = out[:2]
            all_weights += out[2:]
        return h, mean_field, all_weights

    def get_config(self):
        return {**super().get_config(), "point_features": self.point_features, "units": self.units,
                "hidden_units": self.hidden_units, "num_heads": self.num_heads, "n_blocks": self.n_blocks,
                "condition_width": self.condition_width, "average_multiplicity": self.average_multiplicity,
                "weight_norm": self.weight_norm}


@keras.saving.register_keras_serializable(package="caloedu")
class MDMAGeneratorNetwork(_MeanFieldNetwork):
    """MDMA's generator: noise per point -> Φ -> mean field sum / c_N -> n_blocks blocks -> Dense -> points.

    call(noise (B, N, noise_features), mask (B, N), condition (B, condition_width),
         return_attention_scores=False) -> points (B, N, point_features), padding exactly 0
         [, list of n_blocks weights (B, num_heads, 1, N)].
    The defaults (units 32, 3 blocks, 4 heads) give 32,452 weights; with the default critic 65,382 in all,
    about MDMA's size. noise_features defaults to point_features.

    ``noise_skip=True`` (needs noise_features == point_features) returns noise + ω(...) with ω starting at
    zero: a new generator then emits standard-normal points, which are the marginals of the standardised real
    hits already, spread over the calorimeter, and training starts from there instead of from a near-constant
    output that piles every hit into a few voxels.
    """

    def __init__(self, point_features=4, units=32, num_heads=4, n_blocks=3, noise_features=None,
                 condition_width=2, average_multiplicity=1.0, hidden_units=None, weight_norm=False,
                 noise_skip=False, **kwargs):
        noise_features = int(noise_features or point_features)
        super().__init__(noise_features, point_features, units, hidden_units, num_heads, n_blocks,
                         condition_width, average_multiplicity, weight_norm, **kwargs)
        self.noise_features, self.noise_skip = noise_features, bool(noise_skip)
        if self.noise_skip and self.noise_features != self.point_features:
            raise ValueError(f"noise_skip adds the noise to the points: noise_features ({self.noise_features}) "
                             f"must equal point_features ({self.point_features}).")
        self.out = keras.layers.Dense(self.point_features, kernel_initializer="zeros" if self.noise_skip else
                                      "glorot_uniform", name="out")  # ω

    def build(self, noise_shape=None, mask_shape=None, condition_shape=None):
        super().build()
        self.out.build((None, None, self.units))

    def call(self, noise, mask, condition, return_attention_scores=False):
        h, _, weights = self._trunk(noise, mask, condition, return_attention_scores)
        points = self.out(_leaky(h))
        if self.noise_skip:
            points = points + noise
        points = _real(points, mask)  # (B, N, point_features)
        return (points, weights) if return_attention_scores else points

    def get_config(self):
        return {**super().get_config(), "noise_features": self.noise_features, "noise_skip": self.noise_skip}


@keras.saving.register_keras_serializable(package="caloedu")
class MDMACriticNetwork(_MeanFieldNetwork):
    """MDMA's critic: points -> Φ -> mean field sum / c_N -> n_blocks blocks -> 2-layer head on [x̄, condition].

    call(points (B, N, point_features), mask (B, N), condition (B, condition_width),
         return_attention_scores=False) -> (score (B, 1), mean_field (B, units)) [, list of weights].
    The returned mean field is the last block's, for MDMA's mean-field matching loss. The last block does
    not update the points (nothing reads them). Defaults: 32,930 weights (weight-normalised).
    """

    last_block_updates_points = False

    def __init__(self, point_features=4, units=32, num_heads=4, n_blocks=3, condition_width=2,
                 average_multiplicity=1.0, hidden_units=None, weight_norm=True, **kwargs):
        super().__init__(point_features, point_features, units, hidden_units, num_heads, n_blocks,
                         condition_width, average_multiplicity, weight_norm, **kwargs)
        self.head_hidden = _dense(self.hidden_units, weight_norm, "head_hidden")
        self.head_field = _dense(self.units, weight_norm, "head_field")
        self.score = _dense(1, weight_norm, "score")

    def build(self, points_shape=None, mask_shape=None, condition_shape=None):
        super().build()
        self.head_hidden.build((None, self.units + self.condition_width))
        self.head_field.build((None, self.hidden_units))
        self.score.build((None, self.units))

    def call(self, points, mask, condition, return_attention_scores=False):
        _, mean_field, weights = self._trunk(points, mask, condition, return_attention_scores)
        head = _leaky(self.head_hidden(_leaky(ops.concatenate([mean_field, condition], axis=-1))))
        score = self.score(_leaky(self.head_field(head)))  # (B, 1)
        return (score, mean_field, weights) if return_attention_scores else (score, mean_field)
