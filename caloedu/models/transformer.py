"""The encoder-decoder Transformer (Vaswani et al. 2017) for sequence-to-sequence tasks on tokens.

    source tokens (B, T_s) -> embedding * sqrt(d_model) + positions -> N encoder blocks -> memory
    target tokens (B, T_t) -> embedding * sqrt(d_model) + positions -> N decoder blocks (causal
                              self-attention, cross-attention to memory) -> Dense -> logits

Token ``pad_id`` (0 by default) is padding: keys at padded source positions are masked everywhere.
Training uses teacher forcing: the target input is the target shifted right behind a start token.
"""

import math

import keras
import numpy as np
from keras import ops

from caloedu.layers import (
    LearnedPositionalEmbedding,
    SinusoidalPositionalEncoding,
    TransformerDecoderBlock,
    TransformerEncoderBlock,
    causal_mask,
    merge_masks,
    padding_mask,
)


@keras.saving.register_keras_serializable(package="caloedu")
class Transformer(keras.Model):
    """Encoder-decoder Transformer with a greedy decoder.

    Args:
        source_vocab_size, target_vocab_size: number of token ids on each side (pad id included).
        max_length: longest source or target sequence.
        d_model, num_heads, d_ff, num_layers: sizes (num_layers blocks in encoder and in decoder).
        dropout: on embeddings, residual branches and inside the feed-forward networks.
        norm_first: pre-norm blocks (a final LayerNorm is added) instead of the paper's post-norm.
        pad_id: the padding token.
        positional: "sinusoidal" (fixed) or "learned".

    call((source (B, T_s) int, target_in (B, T_t) int)) -> logits (B, T_t, target_vocab_size)
    """

    def __init__(self, source_vocab_size, target_vocab_size, max_length, d_model=64, num_heads=4, d_ff=128,
                 num_layers=2, dropout=0.1, norm_first=False, pad_id=0, positional="sinusoidal", **kwargs):
        super().__init__(**kwargs)
        if positional not in ("sinusoidal", "learned"):
            raise ValueError(f"positional must be 'sinusoidal' or 'learned', got '{positional}'.")
        self.source_vocab_size = int(source_vocab_size)
        self.target_vocab_size = int(target_vocab_size)
        self.max_length = int(max_length)
        self.d_model = int(d_model)
        self.num_heads = int(num_heads)
        self.d_ff = int(d_ff)
        self.num_layers = int(num_layers)
        self.dropout = float(dropout)
        self.norm_first = bool(norm_first)
        self.pad_id = int(pad_id)
        self.positional = positional

        self.source_embedding = keras.layers.Embedding(source_vocab_size, d_model, name="source_embedding")
        self.target_embedding = keras.layers.Embedding(target_vocab_size, d_model, name="target_embedding")
        position_layer = SinusoidalPositionalEncoding if positional == "sinusoidal" else LearnedPositionalEmbedding
        self.source_position = position_layer(max_length, name="source_position")
        self.target_position = position_layer(max_length, name="target_position")
        self.embedding_dropout = keras.layers.Dropout(dropout)
        block_args = dict(num_heads=num_heads, d_ff=d_ff, dropout=dropout, norm_first=norm_first)
        self.encoder_blocks = [TransformerEncoderBlock(**block_args, name=f"encoder_{i}") for i in range(num_layers)]
        self.decoder_blocks = [TransformerDecoderBlock(**block_args, name=f"decoder_{i}") for i in range(num_layers)]
        # Pre-norm stacks end with a LayerNorm; post-norm blocks already end normalised.
        self.encoder_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="encoder_norm") if norm_first else None
        self.decoder_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="decoder_norm") if norm_first else None
        self.output_projection = keras.layers.Dense(target_vocab_size, name="output_projection")

    def build(self, input_shape=None):
        # Build every weight from a dummy pass so a reloaded .keras file finds them all.
        source = ops.zeros((1, 2), dtype="int32")
        target = ops.zeros((1, 2), dtype="int32")
        self.call((source, target))

    def _embed(self, tokens, embedding, position, training):
        x = embedding(tokens) * math.sqrt(self.d_model)
        return self.embedding_dropout(position(x), training=training)

    def encode(self, source, training=None):
        """Source tokens (B, T_s) -> memory (B, T_s, d_model) and the source key mask (B, 1, T_s)."""
        source_mask = padding_mask(source, self.pad_id)
        x = self._embed(source, self.source_embedding, self.source_position, training)
        for block in self.encoder_blocks:
            x = block(x, attention_mask=source_mask, training=training)
        if self.encoder_norm is not None:
            x = self.encoder_norm(x)
        return x, source_mask

    def decode(self, target_in, memory, source_mask, training=None, return_attention_scores=False):
        """Target input tokens (B, T_t) and memory -> logits (B, T_t, target_vocab_size)."""
        length = ops.shape(target_in)[1]
        self_mask = merge_masks(padding_mask(target_in, self.pad_id), causal_mask(length))
        x = self._embed(target_in, self.target_embedding, self.target_position, training)
        maps = []
        for block in self.decoder_blocks:
            out = block(x, memory, self_attention_mask=self_mask, memory_mask=source_mask, use_causal_mask=False,
                        training=training, return_attention_scores=return_attention_scores)
            x, scores = out if return_attention_scores else (out, None)
            maps.append(scores)
        if self.decoder_norm is not None:
            x = self.decoder_norm(x)
        logits = self.output_projection(x)
        return (logits, maps) if return_attention_scores else logits

    def call(self, inputs, training=None):
        source, target_in = inputs
        memory, source_mask = self.encode(source, training=training)
        return self.decode(target_in, memory, source_mask, training=training)

    def greedy_decode(self, source, start_id, length):
        """Decode ``length`` tokens per sequence, each time taking the most likely next token.

        source (B, T_s) int -> (B, length) int numpy array (the start token not included)."""
        source = ops.convert_to_tensor(np.asarray(source), dtype="int32")
        memory, source_mask = self.encode(source, training=False)
        batch = ops.shape(source)[0]
        tokens = ops.full((batch, 1), start_id, dtype="int32")
        for _ in range(length):
            # The whole prefix is re-decoded each step: simple, and cheap at toy lengths.
            logits = self.decode(tokens, memory, source_mask, training=False)
            next_token = ops.cast(ops.argmax(logits[:, -1, :], axis=-1), "int32")
            tokens = ops.concatenate([tokens, ops.expand_dims(next_token, 1)], axis=1)
        return ops.convert_to_numpy(tokens[:, 1:])

    def attention_maps(self, source, target_in):
        """Attention weights for plotting: {"encoder": [(B, H, T_s, T_s) per block],
        "decoder_self": [(B, H, T_t, T_t)], "cross": [(B, H, T_t, T_s)]}, as numpy arrays."""
        source = ops.convert_to_tensor(np.asarray(source), dtype="int32")
        target_in = ops.convert_to_tensor(np.asarray(target_in), dtype="int32")
        source_mask = padding_mask(source, self.pad_id)
        x = self._embed(source, self.source_embedding, self.source_position, False)
        encoder_maps = []
        for block in self.encoder_blocks:
            x, weights = block(x, attention_mask=source_mask, training=False, return_attention_scores=True)
            encoder_maps.append(ops.convert_to_numpy(weights))
        if self.encoder_norm is not None:
            x = self.encoder_norm(x)
        _, maps = self.decode(target_in, x, source_mask, training=False, return_attention_scores=True)
        return {
            "encoder": encoder_maps,
            "decoder_self": [ops.convert_to_numpy(m["self"]) for m in maps],
            "cross": [ops.convert_to_numpy(m["cross"]) for m in maps],
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            source_vocab_size=self.source_vocab_size, target_vocab_size=self.target_vocab_size,
            max_length=self.max_length, d_model=self.d_model, num_heads=self.num_heads, d_ff=self.d_ff,
            num_layers=self.num_layers, dropout=self.dropout, norm_first=self.norm_first, pad_id=self.pad_id,
            positional=self.positional,
        )
        return config
