"""Helpers shared by caloedu's tests and notebooks: tensors to numpy, copying weights from torch modules."""

import numpy as np
from keras import ops


def to_numpy(x):
    """A Keras/torch tensor (on any device, with or without grad) or array as a numpy array."""
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(ops.convert_to_numpy(x))


def _t(weight):
    return weight.detach().cpu().numpy().T  # torch Linear stores (out, in); Keras kernels are (in, out)


def copy_mha_from_torch(layer, module):
    """Copy a ``torch.nn.MultiheadAttention``'s weights into a built caloedu ``MultiHeadAttention``."""
    d = module.embed_dim
    w, b = module.in_proj_weight, module.in_proj_bias
    for i, name in enumerate(("query", "key", "value")):
        getattr(layer, f"{name}_kernel").assign(_t(w[i * d:(i + 1) * d]))
        getattr(layer, f"{name}_bias").assign(b[i * d:(i + 1) * d].detach().cpu().numpy())
    layer.output_kernel.assign(_t(module.out_proj.weight))
    layer.output_bias.assign(module.out_proj.bias.detach().cpu().numpy())


def _copy_norm(norm, module):
    norm.gamma.assign(module.weight.detach().cpu().numpy())
    norm.beta.assign(module.bias.detach().cpu().numpy())


def _copy_dense(dense, module):
    dense.kernel.assign(_t(module.weight))
    dense.bias.assign(module.bias.detach().cpu().numpy())


def copy_block_from_torch(block, module):
    """Copy ``nn.TransformerEncoderLayer`` / ``nn.TransformerDecoderLayer`` weights into a built caloedu
    ``TransformerEncoderBlock`` / ``TransformerDecoderBlock``."""
    copy_mha_from_torch(block.self_attention, module.self_attn)
    if hasattr(module, "multihead_attn"):
        copy_mha_from_torch(block.cross_attention, module.multihead_attn)
    _copy_dense(block.feed_forward.inner, module.linear1)
    _copy_dense(block.feed_forward.outer, module.linear2)
    for i, norm in enumerate(block.norms):
        _copy_norm(norm, getattr(module, f"norm{i + 1}"))
