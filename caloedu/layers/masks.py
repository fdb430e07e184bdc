"""Boolean attention masks. Convention everywhere in caloedu: True = this query may attend to this key.

A mask broadcasts against the attention scores of shape (..., T_q, T_k)."""

import numpy as np
from keras import ops


def causal_mask(length, key_length=None):
    """(length, length) bool, True on and below the diagonal: position i sees positions 0..i only.

    With ``key_length`` the mask is (length, key_length), aligned at the top left as torch's
    ``is_causal`` is: query i sees keys 0..i."""
    key_length = length if key_length is None else key_length
    return ops.convert_to_tensor(np.tril(np.ones((length, key_length), dtype=bool)))


def padding_mask(tokens, pad_id=0):
    """(B, 1, T) bool, True where the key is a real token (not ``pad_id``); broadcasts over queries."""
    tokens = ops.convert_to_tensor(tokens)
    return ops.expand_dims(ops.not_equal(tokens, pad_id), axis=-2)


def merge_masks(*masks):
    """Logical AND of the masks that are not None (None if all are None)."""
    result = None
    for mask in masks:
        if mask is None:
            continue
        mask = ops.cast(mask, "bool")
        result = mask if result is None else ops.logical_and(result, mask)
    return result
