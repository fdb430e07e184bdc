"""Models that are not shower generators: the encoder-decoder Transformer."""

from caloedu.models.transformer import Transformer

__all__ = ["Transformer"]
