"""Training callbacks for generators: a budget (wall-clock minutes or training showers) with a cosine
learning-rate schedule over it, and a guard that stops a diverged training with a message.

A budget is how the course compares generators ("what does each reach in 10 minutes on a laptop"), so the
learning rate follows the elapsed fraction of the budget rather than a step count nobody knows in advance.
A budget in showers makes a result reproducible on a slower or busier machine: the same showers in the same
order, the same schedule, whatever the wall clock says.
"""

import math
import time

import keras
import numpy as np


def optimizers_of(model):
    """Every optimizer of ``model``: a generator's named optimizers, else Keras' single one."""
    return list(getattr(model, "optimizers", {}).values()) or [model.optimizer]


class TrainingBudget(keras.callbacks.Callback):
    """Stop training after ``minutes`` of wall time or ``showers`` training showers, whichever comes first
    (checked after every batch; ``showers`` counts from the start of this ``fit``).

    With ``cosine=True`` every optimizer's learning rate decays as a cosine over the budget, from its
    initial value to ``final_fraction`` of it (Loshchilov & Hutter's SGDR without restarts), after a linear
    warm-up over the first ``warmup_fraction``. With both limits the schedule follows the larger fraction.
    """

    def __init__(self, minutes=None, showers=None, cosine=True, final_fraction=0.02, warmup_fraction=0.02):
        super().__init__()
        if minutes is None and showers is None:
            raise ValueError("A training budget needs minutes or showers (or both).")
        if minutes is not None and minutes <= 0:
            raise ValueError(f"The time budget must be positive, got {minutes} minutes.")
        if showers is not None and showers < 1:
            raise ValueError(f"The shower budget must be at least 1 shower, got {showers}.")
        self.seconds = None if minutes is None else 60.0 * float(minutes)
        self.showers = None if showers is None else int(showers)
        self.cosine = bool(cosine)
        self.final_fraction = float(final_fraction)
        self.warmup_fraction = float(warmup_fraction)
        self.start = None
        self.stopped_early = False

    def elapsed_fraction(self):
        fractions = []
        if self.seconds is not None:
            fractions.append((time.perf_counter() - self.start) / self.seconds)
        if self.showers is not None:
            fractions.append(self.showers_this_fit() / self.showers)
        return max(fractions)

    def showers_this_fit(self):
        return int(keras.ops.convert_to_numpy(self.model.showers_seen)) - self.showers_at_start

    def learning_rate_factor(self, fraction):
        """Multiplier of the initial learning rate at ``fraction`` of the budget."""
        fraction = min(max(fraction, 0.0), 1.0)
        if fraction < self.warmup_fraction:
            return max(fraction / self.warmup_fraction, 0.01)
        return self.final_fraction + (1.0 - self.final_fraction) * 0.5 * (1.0 + math.cos(math.pi * fraction))

    def on_train_begin(self, logs=None):
        if self.showers is not None and not hasattr(self.model, "showers_seen"):
            raise ValueError("A budget in showers needs a caloedu generator (it counts the showers it trains on).")
        self.start = time.perf_counter()
        self.showers_at_start = int(keras.ops.convert_to_numpy(self.model.showers_seen)) \
            if self.showers is not None else 0
        self.optimizers = optimizers_of(self.model)
        self.initial_learning_rates = [float(keras.ops.convert_to_numpy(o.learning_rate)) for o in self.optimizers]
        self.fraction = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        if self.cosine:  # at the fraction measured after the last batch: one reading of the clock per batch
            factor = self.learning_rate_factor(self.fraction)
            for optimizer, rate in zip(self.optimizers, self.initial_learning_rates):
                optimizer.learning_rate.assign(rate * factor)

    def on_train_batch_end(self, batch, logs=None):
        self.fraction = self.elapsed_fraction()
        if self.fraction >= 1.0:
            self.model.stop_training = True
            self.stopped_early = True

    def on_train_end(self, logs=None):
        if self.cosine:  # leave the optimizers as they were, so a resumed run starts from the same rates
            for optimizer, rate in zip(self.optimizers, self.initial_learning_rates):
                optimizer.learning_rate.assign(rate)


class TrainingDiverged(ValueError):
    """A loss became NaN or infinite during training; the weights can no longer be trusted."""


class NaNGuard(keras.callbacks.Callback):
    """Stop training at the first batch whose logged losses are not all finite, and remember where."""

    def __init__(self):
        super().__init__()
        self.problem = None

    def on_train_batch_end(self, batch, logs=None):
        bad = {name: float(value) for name, value in (logs or {}).items()
               if np.size(value) == 1 and not np.isfinite(float(value))}
        if bad:
            self.problem = (self.epoch, batch, bad)
            self.model.stop_training = True

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_begin(self, logs=None):
        self.problem, self.epoch = None, 0

    def raise_if_diverged(self, what):
        """Raise `TrainingDiverged` naming ``what`` (the family) if a batch went non-finite."""
        if self.problem is None:
            return
        epoch, batch, bad = self.problem
        losses = ", ".join(f"{name} = {value}" for name, value in bad.items())
        raise TrainingDiverged(
            f"Training of {what} diverged at epoch {epoch + 1}, batch {batch + 1} ({losses}); its weights are no "
            "longer usable. Lower the learning rate (--learning-rate, e.g. by 3x), check the showers for extreme "
            "values, or resume from the last good .keras file.")
