"""Transformer encoder and decoder blocks (Vaswani et al. 2017), post-norm or pre-norm.

Post-norm (the paper, and torch's default ``norm_first=False``):
    x = LayerNorm(x + Dropout(Sublayer(x)))
Pre-norm (GPT-2 and most modern models; trains deeper stacks without warm-up):
    x = x + Dropout(Sublayer(LayerNorm(x)))
The sublayers are self-attention, cross-attention (decoder only) and the position-wise feed-forward
network Dense(d_ff, activation) -> Dense(d_model). Dropout sits on the residual branches and inside the
feed-forward network, never on the attention weights, so attention can use the fused kernel.
"""

import keras
from keras import ops

from caloedu.layers.attention import MultiHeadAttention


@keras.saving.register_keras_serializable(package="caloedu")
class FeedForward(keras.layers.Layer):
    """Position-wise feed-forward network: (B, T, d_model) -> Dense(d_ff) -> act -> Dense(d_model)."""

    def __init__(self, d_ff, activation="relu", dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.d_ff = int(d_ff)
        self.activation = activation
        self.dropout = float(dropout)
        self.inner = keras.layers.Dense(self.d_ff, activation=activation, name="inner")
        self.inner_dropout = keras.layers.Dropout(self.dropout)
        self.outer = None

    def build(self, input_shape):
        self.inner.build(input_shape)
        self.outer = keras.layers.Dense(input_shape[-1], name="outer")
        self.outer.build((*input_shape[:-1], self.d_ff))

    def call(self, x, training=None):
        return self.outer(self.inner_dropout(self.inner(x), training=training))

    def get_config(self):
        config = super().get_config()
        config.update(d_ff=self.d_ff, activation=self.activation, dropout=self.dropout)
        return config


class _Block(keras.layers.Layer):
    """Shared plumbing of the encoder and decoder blocks: residual + norm around each sublayer."""

    n_sublayers = 0

    def __init__(self, num_heads, d_ff, dropout=0.0, norm_first=False, activation="relu",
                 layer_norm_epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.d_ff = int(d_ff)
        self.dropout = float(dropout)
        self.norm_first = bool(norm_first)
        self.activation = activation
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.norms = [keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name=f"norm{i + 1}")
                      for i in range(self.n_sublayers)]
        self.residual_dropout = keras.layers.Dropout(self.dropout)
        self.feed_forward = FeedForward(d_ff, activation=activation, dropout=dropout, name="feed_forward")

    def _key_dim(self, d_model):
        if d_model % self.num_heads:
            raise ValueError(f"d_model={d_model} is not divisible by num_heads={self.num_heads}.")
        return d_model // self.num_heads

    def _residual(self, x, index, sublayer, training):
        """Apply sublayer ``index`` with its residual connection and LayerNorm (pre or post)."""
        norm = self.norms[index]
        if self.norm_first:
            out = sublayer(norm(x))
            return x + self.residual_dropout(out, training=training), out
        out = sublayer(x)
        return norm(x + self.residual_dropout(out, training=training)), out

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads, d_ff=self.d_ff, dropout=self.dropout, norm_first=self.norm_first,
            activation=self.activation, layer_norm_epsilon=self.layer_norm_epsilon,
        )
        return config


@keras.saving.register_keras_serializable(package="caloedu")
class TransformerEncoderBlock(_Block):
    """Self-attention + feed-forward, each with residual and LayerNorm.

    call(x (B, T, d_model), attention_mask=None (bool, broadcast to (B, T, T); True = may attend),
         training=None, return_attention_scores=False) -> (B, T, d_model) [, weights (B, H, T, T)]
    d_model is taken from the input and must be divisible by ``num_heads``.
    """

    n_sublayers = 2

    def build(self, input_shape):
        d_model = input_shape[-1]
        self.self_attention = MultiHeadAttention(self.num_heads, self._key_dim(d_model), name="self_attention")
        self.self_attention.build(input_shape)
        for norm in self.norms:
            norm.build(input_shape)
        self.feed_forward.build(input_shape)

    def call(self, x, attention_mask=None, training=None, return_attention_scores=False):
        weights = None

        def attend(h):
            nonlocal weights
            if return_attention_scores:
                out, weights = self.self_attention(h, h, attention_mask=attention_mask, return_attention_scores=True)
                return out
            return self.self_attention(h, h, attention_mask=attention_mask)

        x, _ = self._residual(x, 0, attend, training)
        x, _ = self._residual(x, 1, lambda h: self.feed_forward(h, training=training), training)
        return (x, weights) if return_attention_scores else x

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="caloedu")
class TransformerDecoderBlock(_Block):
    """Masked self-attention, cross-attention to the encoder output, feed-forward.

    call(x (B, T_t, d_model), memory (B, T_s, d_model), self_attention_mask=None (broadcast to
         (B, T_t, T_t)), memory_mask=None (broadcast to (B, T_t, T_s)), use_causal_mask=True,
         training=None, return_attention_scores=False)
    -> (B, T_t, d_model) [, {"self": (B, H, T_t, T_t), "cross": (B, H, T_t, T_s)}]
    With ``use_causal_mask`` position i of the target sees target positions 0..i only.
    """

    n_sublayers = 3

    def build(self, x_shape, memory_shape=None):
        memory_shape = memory_shape or x_shape
        key_dim = self._key_dim(x_shape[-1])
        self.self_attention = MultiHeadAttention(self.num_heads, key_dim, name="self_attention")
        self.self_attention.build(x_shape)
        self.cross_attention = MultiHeadAttention(self.num_heads, key_dim, name="cross_attention")
        self.cross_attention.build(x_shape, memory_shape)
        for norm in self.norms:
            norm.build(x_shape)
        self.feed_forward.build(x_shape)

    def call(self, x, memory, self_attention_mask=None, memory_mask=None, use_causal_mask=True,
             training=None, return_attention_scores=False):
        weights = {}

        def attention(layer, name, kv, mask, causal):
            def apply(h):
                if return_attention_scores:
                    out, weights[name] = layer(h, kv if kv is not None else h, attention_mask=mask,
                                               use_causal_mask=causal, return_attention_scores=True)
                    return out
                return layer(h, kv if kv is not None else h, attention_mask=mask, use_causal_mask=causal)
            return apply

        x, _ = self._residual(x, 0, attention(self.self_attention, "self", None, self_attention_mask,
                                              use_causal_mask), training)
        x, _ = self._residual(x, 1, attention(self.cross_attention, "cross", memory, memory_mask, False), training)
        x, _ = self._residual(x, 2, lambda h: self.feed_forward(h, training=training), training)
        return (x, weights) if return_attention_scores else x

    def compute_output_shape(self, x_shape, memory_shape=None):
        return x_shape
