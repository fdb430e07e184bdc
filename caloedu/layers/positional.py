"""Positional information for attention, which by itself ignores order (it is permutation equivariant).

Sinusoidal encoding (Vaswani et al. 2017): for position p and feature pair i,
    PE[p, 2i] = sin(p / 10000^(2i / d)),   PE[p, 2i + 1] = cos(p / 10000^(2i / d)).
Each pair is a rotation at its own frequency, so PE[p + k] is a linear function of PE[p] and the model
can attend by relative position. A learned embedding is the alternative (BERT, ViT).
"""

import keras
import numpy as np
from keras import ops


def sinusoidal_encoding(length, depth, base=10000.0):
    """(length, depth) float32 array of sinusoidal position encodings (sin on even, cos on odd features)."""
    if depth < 1 or length < 1:
        raise ValueError(f"length and depth must be positive, got {length} and {depth}.")
    positions = np.arange(length, dtype=np.float64)[:, None]
    pair = np.arange(0, depth, 2, dtype=np.float64)[None, :]  # 2i
    angles = positions / np.power(base, pair / depth)
    encoding = np.zeros((length, depth), dtype=np.float64)
    encoding[:, 0::2] = np.sin(angles)
    encoding[:, 1::2] = np.cos(angles[:, : depth // 2])
    return encoding.astype(np.float32)


@keras.saving.register_keras_serializable(package="caloedu")
class SinusoidalPositionalEncoding(keras.layers.Layer):
    """Adds the fixed sinusoidal encoding to a sequence: (B, T, d) -> (B, T, d), T <= max_length.

    Args:
        max_length: the longest sequence the table covers.
        base: the wavelength scale (10000 in the paper).
    """

    def __init__(self, max_length=2048, base=10000.0, **kwargs):
        super().__init__(**kwargs)
        self.max_length = int(max_length)
        self.base = float(base)

    def build(self, input_shape):
        # A fixed table, rebuilt from the config rather than saved with the weights. It is moved to
        # the input's device on first use there (Keras traces shapes on torch's "meta" device).
        self._table = sinusoidal_encoding(self.max_length, input_shape[-1], self.base)
        self._on_device = {}

    def _encoding(self, x):
        import torch

        key = (x.device, x.dtype)
        if key not in self._on_device:
            self._on_device[key] = torch.as_tensor(self._table, device=x.device, dtype=x.dtype)
        return self._on_device[key]

    def call(self, x):
        length = ops.shape(x)[1]
        if isinstance(length, int) and length > self.max_length:
            raise ValueError(f"Sequence of length {length} is longer than max_length={self.max_length}.")
        return x + self._encoding(x)[:length]

    def get_config(self):
        config = super().get_config()
        config.update(max_length=self.max_length, base=self.base)
        return config


@keras.saving.register_keras_serializable(package="caloedu")
class LearnedPositionalEmbedding(keras.layers.Layer):
    """Adds a trainable vector per position: (B, T, d) -> (B, T, d), T <= max_length."""

    def __init__(self, max_length, initializer="random_normal", **kwargs):
        super().__init__(**kwargs)
        self.max_length = int(max_length)
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            name="embeddings", shape=(self.max_length, input_shape[-1]), initializer=self.initializer
        )

    def call(self, x):
        length = ops.shape(x)[1]
        if isinstance(length, int) and length > self.max_length:
            raise ValueError(f"Sequence of length {length} is longer than max_length={self.max_length}.")
        return x + ops.cast(self.embeddings[:length], x.dtype)

    def get_config(self):
        config = super().get_config()
        config.update(max_length=self.max_length, initializer=keras.initializers.serialize(self.initializer))
        return config
