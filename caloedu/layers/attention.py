"""Scaled dot-product attention and multi-head attention (Vaswani et al. 2017, "Attention is all you need").

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V

Two paths compute the same thing. ``scaled_dot_product_attention`` is the explicit one the lecture
builds (it returns the weights, so they can be drawn). ``MultiHeadAttention`` calls the fused kernel
(``keras.ops.dot_product_attention``, i.e. torch's SDPA: flash / memory-efficient attention on CUDA)
whenever the weights are not asked for, and the explicit path when they are.
"""

import keras
from keras import ops

from caloedu.layers.masks import causal_mask, merge_masks


def stable_softmax(x, axis=-1):
    """Softmax that subtracts the maximum first, so large scores do not overflow exp()."""
    x = ops.convert_to_tensor(x)
    x = x - ops.stop_gradient(ops.max(x, axis=axis, keepdims=True))
    e = ops.exp(x)
    return e / ops.sum(e, axis=axis, keepdims=True)


def _mask_fill(dtype):
    # A large finite negative rather than -inf: a fully masked row then gives uniform weights
    # instead of NaN, and half precision does not overflow.
    return -1e4 if str(dtype) in ("float16", "bfloat16", "torch.float16", "torch.bfloat16") else -1e9


def scaled_dot_product_attention(query, key, value, mask=None):
    """Explicit attention, returning the output and the attention weights.

    Args:
        query: (..., T_q, d_k).  key: (..., T_k, d_k).  value: (..., T_k, d_v).
        mask: bool, broadcast to (..., T_q, T_k); True = may attend. Masked scores are set to a
            large negative number *before* the softmax, so their weights are exactly 0.
    Returns:
        output (..., T_q, d_v) and weights (..., T_q, T_k), each row of weights summing to 1.
    """
    query = ops.convert_to_tensor(query)
    key = ops.convert_to_tensor(key)
    value = ops.convert_to_tensor(value)
    d_k = ops.shape(query)[-1]
    scores = ops.matmul(query, ops.swapaxes(key, -1, -2)) / ops.sqrt(ops.cast(d_k, query.dtype))
    if mask is not None:
        scores = ops.where(ops.cast(mask, "bool"), scores, ops.cast(_mask_fill(scores.dtype), scores.dtype))
    weights = ops.softmax(scores, axis=-1)  # over the keys
    return ops.matmul(weights, value), weights


def split_heads(x, num_heads):
    """(B, T, H * d) -> (B, H, T, d): each head gets its own slice of the features."""
    batch, length, features = ops.shape(x)
    x = ops.reshape(x, (batch, length, num_heads, features // num_heads))
    return ops.transpose(x, (0, 2, 1, 3))


def merge_heads(x):
    """(B, H, T, d) -> (B, T, H * d), the inverse of `split_heads`."""
    batch, heads, length, depth = ops.shape(x)
    return ops.reshape(ops.transpose(x, (0, 2, 1, 3)), (batch, length, heads * depth))


@keras.saving.register_keras_serializable(package="caloedu")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head attention for self-attention (``value`` is ``query``) and cross-attention.

    Each of the ``num_heads`` heads projects queries and keys to ``key_dim`` and values to
    ``value_dim`` features, attends, and the heads are concatenated and projected back.

    Args:
        num_heads: number of heads H.
        key_dim: features per head of queries and keys (d_k).
        value_dim: features per head of values (d_v); defaults to ``key_dim``.
        output_dim: features of the output; defaults to the query's last dimension.
        use_bias: biases in the four projections.

    call(query (B, T_q, d_q), value (B, T_k, d_v_in), key=None (defaults to value),
         attention_mask=None (bool, broadcast to (B, T_q, T_k)), use_causal_mask=False,
         return_attention_scores=False)
    -> output (B, T_q, output_dim), or (output, weights (B, H, T_q, T_k)) when scores are asked for.

    No dropout inside: attention dropout would disable the fused kernel, so the blocks put dropout
    on the residual branches instead.
    """

    def __init__(self, num_heads, key_dim, value_dim=None, output_dim=None, use_bias=True,
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if num_heads < 1 or key_dim < 1:
            raise ValueError(f"num_heads and key_dim must be positive, got {num_heads} and {key_dim}.")
        self.num_heads = int(num_heads)
        self.key_dim = int(key_dim)
        self.value_dim = int(value_dim or key_dim)
        self.output_dim = output_dim
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, query_shape, value_shape=None, key_shape=None):
        value_shape = value_shape or query_shape
        key_shape = key_shape or value_shape
        out_dim = self.output_dim or query_shape[-1]
        h, dk, dv = self.num_heads, self.key_dim, self.value_dim

        def projection(name, d_in, d_out):
            kernel = self.add_weight(name=f"{name}_kernel", shape=(d_in, d_out), initializer=self.kernel_initializer)
            bias = self.add_weight(name=f"{name}_bias", shape=(d_out,), initializer="zeros") if self.use_bias else None
            return kernel, bias

        self.query_kernel, self.query_bias = projection("query", query_shape[-1], h * dk)
        self.key_kernel, self.key_bias = projection("key", key_shape[-1], h * dk)
        self.value_kernel, self.value_bias = projection("value", value_shape[-1], h * dv)
        self.output_kernel, self.output_bias = projection("output", h * dv, out_dim)

    @staticmethod
    def _project(x, kernel, bias):
        y = ops.matmul(x, kernel)
        return y if bias is None else y + bias

    def call(self, query, value=None, key=None, attention_mask=None, use_causal_mask=False,
             return_attention_scores=False):
        value = query if value is None else value
        key = value if key is None else key
        batch, t_q = ops.shape(query)[0], ops.shape(query)[1]
        t_k = ops.shape(key)[1]
        h = self.num_heads
        # (B, T, H, d): the layout keras.ops.dot_product_attention takes.
        q = ops.reshape(self._project(query, self.query_kernel, self.query_bias), (batch, t_q, h, self.key_dim))
        k = ops.reshape(self._project(key, self.key_kernel, self.key_bias), (batch, t_k, h, self.key_dim))
        v = ops.reshape(self._project(value, self.value_kernel, self.value_bias), (batch, t_k, h, self.value_dim))

        mask = attention_mask
        if mask is not None:
            mask = ops.expand_dims(ops.cast(mask, "bool"), axis=-3)  # (B, 1, T_q, T_k): same for all heads
        if return_attention_scores:
            if use_causal_mask:
                mask = merge_masks(mask, causal_mask(t_q, t_k))
            out, weights = scaled_dot_product_attention(
                ops.transpose(q, (0, 2, 1, 3)), ops.transpose(k, (0, 2, 1, 3)), ops.transpose(v, (0, 2, 1, 3)), mask
            )
            out = ops.transpose(out, (0, 2, 1, 3))  # (B, T_q, H, d_v)
        else:
            if mask is not None:
                mask = ops.broadcast_to(mask, (batch, h, t_q, t_k))
            out = ops.dot_product_attention(q, k, v, mask=mask, is_causal=use_causal_mask)
        out = ops.reshape(out, (batch, t_q, h * self.value_dim))
        out = self._project(out, self.output_kernel, self.output_bias)
        return (out, weights) if return_attention_scores else out

    def compute_output_shape(self, query_shape, value_shape=None, key_shape=None):
        return (*query_shape[:-1], self.output_dim or query_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            key_dim=self.key_dim,
            value_dim=self.value_dim,
            output_dim=self.output_dim,
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config

