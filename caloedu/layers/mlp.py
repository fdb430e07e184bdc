"""A residual MLP conditioned on the incident energy: what the voxel GAN's generator, the VAE's encoder and its
decoder are made of.

(inputs (B, I), condition (B, 1)) -> (B, O): the inputs and the condition's Fourier features go through a
Dense layer, then ``n_blocks`` residual blocks each modulated by an embedding of the condition (FiLM,
`caloedu.layers.conditioning`), a LayerNorm and a linear output.
"""

import keras
from keras import ops

from caloedu.layers.conditioning import FiLMResidualBlock, FourierFeatures


@keras.saving.register_keras_serializable(package="caloedu")
class ConditionalResidualMLP(keras.layers.Layer):
    """(inputs (B, input_dim), condition (B, 1)) -> (B, output_dim); see the module docstring.

    Args:
        input_dim, output_dim: widths of the inputs and the outputs.
        units: width of the hidden representation.  n_blocks: residual FiLM blocks.
        n_frequencies: Fourier frequencies of the condition.
    """

    def __init__(self, input_dim, output_dim, units=512, n_blocks=3, n_frequencies=4, **kwargs):
        super().__init__(**kwargs)
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.units, self.n_blocks, self.n_frequencies = int(units), int(n_blocks), int(n_frequencies)
        self.fourier = FourierFeatures(self.n_frequencies, name="fourier")
        self.embedding = keras.layers.Dense(self.units, activation="silu", name="embedding")
        self.inputs_dense = keras.layers.Dense(self.units, name="in")
        self.blocks = [FiLMResidualBlock(self.units, name=f"block{i}") for i in range(self.n_blocks)]
        self.out_norm = keras.layers.LayerNormalization(name="out_norm")
        self.out = keras.layers.Dense(self.output_dim, name="out")

    def build(self, inputs_shape=None, condition_shape=None):
        width = 1 + 2 * self.n_frequencies
        self.fourier.build((None, 1))
        self.embedding.build((None, width))
        self.inputs_dense.build((None, self.input_dim + width))
        for block in self.blocks:
            block.build((None, self.units), (None, self.units))
        self.out_norm.build((None, self.units))
        self.out.build((None, self.units))

    def call(self, inputs, condition):
        fourier = self.fourier(condition)
        embedding = self.embedding(fourier)
        h = self.inputs_dense(ops.concatenate([inputs, fourier], axis=-1))
        for block in self.blocks:
            h = block(h, embedding)
        return self.out(self.out_norm(h))

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "units": self.units, "n_blocks": self.n_blocks, "n_frequencies": self.n_frequencies}
