"""The exponential moving average (EMA) of a generator's weights: averaged weights sample better than the
last ones of a noisy training. The average lives in non-trainable weights of the model (saved with it);
sampling swaps it in, training goes on from the raw weights."""

import contextlib


def warmed_up_momentum(momentum, steps):
    """The momentum after ``steps`` updates: min(momentum, (1 + n) / (10 + n)), 0 at the first (the average
    starts as the weights), so a short (budgeted) training does not sample from an average of its first,
    random weights."""
    return 0.0 if steps == 0 else min(momentum, (1.0 + steps) / (10.0 + steps))


def update_moving_average(averages, weights, momentum):
    """average <- momentum average + (1 - momentum) weight, for all (Keras) weights in one fused update."""
    import torch

    with torch.no_grad():
        torch._foreach_lerp_([a.value for a in averages], [w.value for w in weights], 1.0 - momentum)


@contextlib.contextmanager
def holding(weights, values):
    """Within the block ``weights`` hold ``values`` (Keras variables of the same shapes); then their own again."""
    import torch

    with torch.no_grad():
        saved = [w.value.detach().clone() for w in weights]
        for weight, value in zip(weights, values):
            weight.value.copy_(value.value)
    try:
        yield
    finally:
        with torch.no_grad():
            for weight, value in zip(weights, saved):
                weight.value.copy_(value)
