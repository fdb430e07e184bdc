"""Training callbacks for generators: a wall-clock budget and a cosine learning-rate schedule over it.

A time budget is how the course compares generators ("what does each reach in 10 minutes on a laptop"),
so the learning rate follows the elapsed fraction of the budget rather than a step count that nobody
knows in advance.
"""

import math
import time

import keras


class TimeBudget(keras.callbacks.Callback):
    """Stop training after ``minutes`` of wall time (checked after every batch).

    With ``cosine=True`` the optimizer's learning rate also decays as a cosine over the budget, from
    its initial value to ``final_fraction`` of it (Loshchilov & Hutter's SGDR without restarts), after
    a linear warm-up over the first ``warmup_fraction`` of the budget.
    """

    def __init__(self, minutes, cosine=True, final_fraction=0.02, warmup_fraction=0.02):
        super().__init__()
        if minutes <= 0:
            raise ValueError(f"The time budget must be positive, got {minutes} minutes.")
        self.seconds = 60.0 * float(minutes)
        self.cosine = bool(cosine)
        self.final_fraction = float(final_fraction)
        self.warmup_fraction = float(warmup_fraction)
        self.start = None
        self.stopped_early = False

    def elapsed_fraction(self):
        return (time.perf_counter() - self.start) / self.seconds

    def learning_rate_factor(self, fraction):
        """Multiplier of the initial learning rate at ``fraction`` of the budget."""
        fraction = min(max(fraction, 0.0), 1.0)
        if fraction < self.warmup_fraction:
            return max(fraction / self.warmup_fraction, 0.01)
        return self.final_fraction + (1.0 - self.final_fraction) * 0.5 * (1.0 + math.cos(math.pi * fraction))

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()
        self.initial_learning_rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_train_batch_begin(self, batch, logs=None):
        if self.cosine:
            factor = self.learning_rate_factor(self.elapsed_fraction())
            self.model.optimizer.learning_rate.assign(self.initial_learning_rate * factor)

    def on_train_batch_end(self, batch, logs=None):
        if self.elapsed_fraction() >= 1.0:
            self.model.stop_training = True
            self.stopped_early = True

    def on_train_end(self, logs=None):
        if self.cosine:  # leave the optimizer as it was, so a resumed run starts from the same rate
            self.model.optimizer.learning_rate.assign(self.initial_learning_rate)
