"""Keras 3 layers for attention, transformers, conditioning and normalizing flows (torch backend; runs on CUDA when present)."""

from caloedu.layers.attention import (
    MultiHeadAttention,
    merge_heads,
    scaled_dot_product_attention,
    split_heads,
    stable_softmax,
)
from caloedu.layers.coupling import (
    ActNorm,
    CouplingBlock,
    CouplingFlow,
    CouplingSubnet,
    FixedPermutation,
    TwoStageFlow,
    affine_forward,
    affine_inverse,
    conditional_coupling_forward,
    inverse_permutation,
    permute,
    standard_normal_log_prob,
)
from caloedu.layers.conditioning import ConditionEmbedding, FiLMResidualBlock, FourierFeatures, fourier_features
from caloedu.layers.splines import rational_quadratic_spline
from caloedu.layers.mlp import ConditionalResidualMLP
from caloedu.layers.masks import causal_mask, merge_masks, padding_mask
from caloedu.layers.mean_field import (
    MDMACriticNetwork,
    MDMAGeneratorNetwork,
    MeanFieldAttentionBlock,
    WeightNormDense,
    masked_attention_pooling,
    masked_mean,
    math_attention,
    mean_field_pooling,
)
from caloedu.layers.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding, sinusoidal_encoding
from caloedu.layers.transformer import FeedForward, TransformerDecoderBlock, TransformerEncoderBlock

__all__ = [
    "scaled_dot_product_attention", "stable_softmax", "split_heads", "merge_heads", "MultiHeadAttention",
    "causal_mask", "padding_mask", "merge_masks",
    "sinusoidal_encoding", "SinusoidalPositionalEncoding", "LearnedPositionalEmbedding",
    "FeedForward", "TransformerEncoderBlock", "TransformerDecoderBlock",
    "fourier_features", "FourierFeatures", "ConditionEmbedding", "FiLMResidualBlock",
    "affine_forward", "affine_inverse", "standard_normal_log_prob", "permute", "inverse_permutation",
    "conditional_coupling_forward", "CouplingSubnet", "CouplingBlock", "FixedPermutation", "ActNorm", "CouplingFlow",
    "TwoStageFlow", "rational_quadratic_spline",
    "masked_attention_pooling", "masked_mean", "mean_field_pooling", "math_attention", "WeightNormDense", "MeanFieldAttentionBlock",
    "MDMAGeneratorNetwork", "MDMACriticNetwork", "ConditionalResidualMLP",
]
