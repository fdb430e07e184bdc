"""The CaloChallenge classifier protocol, exactly: the yardstick that published AUCs were measured with.

CaloChallenge's evaluate.py (code/evaluate.py of github.com/CaloChallenge/homepage) trains a plain DNN on
unscaled inputs; caloedu's default protocol (`caloedu.evaluation.classifier`) standardises and whitens them
and so finds differences the official one misses (the README's results section compares the two). Only
numbers from this protocol sit next to published ones. What it does, step by step:

- inputs as given (`low_level_classifier_inputs`, `high_level_classifier_inputs`), no standardisation;
- the larger sample cut to the size of the smaller; each shuffled and split 60 / 20 / 20 into train / test /
  validation (CaloChallenge's names), with int() truncation of the split sizes;
- a DNN: inputs -> 2048 -> 2048 -> 2048 -> 1 logit, LeakyReLU (slope 0.01), no dropout, torch's default
  initialisation (uniform, bound 1/sqrt(fan_in) for weights and biases);
- Adam (lr 2e-4, eps 1e-8), binary cross-entropy with logits, batch 1000 shuffled, 50 epochs; after each
  epoch the accuracy on the test split, the weights of the first best epoch kept (stop early at 100 %);
- isotonic regression of the labels on the test split's probabilities (clipped to [1e-6, 1 - 1e-6]);
- on the validation split, with the calibrated probabilities: AUC, and JSD = (ln 2 - BCE) / ln 2.
"""

import math
import time

import numpy as np

from caloedu import runtime

CALOCHALLENGE = {
    "hidden_units": (2048, 2048, 2048),
    "negative_slope": 0.01,
    "learning_rate": 2e-4,
    "adam_epsilon": 1e-8,
    "batch_size": 1000,
    "epochs": 50,
    "split": (0.6, 0.2, 0.2),
    "calibration_clip": 1e-6,
}


def calochallenge_split(reference_inputs, generated_inputs, rng):
    """((x, y) train, test, validation) as evaluate.py's ttv_split makes them: equal class sizes, each class
    shuffled and cut at int(0.6 n) and int(0.6 n) + int(0.2 n), labels 0 (reference) and 1 (generated)."""
    n = min(len(reference_inputs), len(generated_inputs))
    sizes = (np.array(CALOCHALLENGE["split"]) * n).astype(int)
    cuts = np.cumsum(sizes)[:-1]
    parts = [[], [], []]
    for label, data in ((0.0, reference_inputs[:n]), (1.0, generated_inputs[:n])):
        data = data[rng.permutation(n)]
        for part, chunk in zip(parts, np.split(data, cuts)):
            part.append((chunk, np.full(len(chunk), label, dtype=np.float32)))
    splits = []
    for part in parts:
        x = np.concatenate([chunk for chunk, _ in part])
        y = np.concatenate([labels for _, labels in part])
        order = rng.permutation(len(x))
        splits.append((x[order], y[order]))
    return splits


def build_calochallenge_classifier(n_inputs):
    """The CaloChallenge DNN in Keras, initialised as torch.nn.Linear is (Keras' own default is Glorot)."""
    import keras

    layers = [keras.Input(shape=(n_inputs,))]
    fan_in = n_inputs
    for i, units in enumerate((*CALOCHALLENGE["hidden_units"], 1)):
        bound = 1.0 / math.sqrt(fan_in)
        layers.append(keras.layers.Dense(
            units, name=f"dense_{i}" if units > 1 else "logit",
            # torch's kaiming_uniform_(a=sqrt(5)) is uniform with bound sqrt(1 / fan_in): VarianceScaling(1/3).
            kernel_initializer=keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform"),
            bias_initializer=keras.initializers.RandomUniform(-bound, bound),
        ))
        if units > 1:
            layers.append(keras.layers.LeakyReLU(negative_slope=CALOCHALLENGE["negative_slope"]))
        fan_in = units
    return keras.Sequential(layers, name="calochallenge_classifier")


def _best_test_accuracy_callback(progress, epochs):
    import keras

    class BestTestAccuracy(keras.callbacks.Callback):
        """Keep the weights of the first epoch with the best test accuracy; stop at 100 % (as evaluate.py)."""

        best, best_epoch, best_weights = -math.inf, 0, None

        def on_epoch_end(self, epoch, logs=None):
            accuracy = float(logs["val_accuracy"])
            if accuracy > self.best:
                self.best, self.best_epoch, self.best_weights = accuracy, epoch + 1, self.model.get_weights()
            if accuracy == 1.0:
                self.model.stop_training = True
            if progress is not None:
                progress(epoch + 1, epochs)

        def on_train_end(self, logs=None):
            self.model.set_weights(self.best_weights)

    return BestTestAccuracy()


def calochallenge_classifier_metric(reference_inputs, generated_inputs, epochs=None, seed=0, inputs="custom",
                                    verbose=0, progress=None):
    """The classifier metric by the CaloChallenge protocol (module docstring); returns a `ClassifierResult`
    with ``protocol='calochallenge'``. ``epochs`` other than 50 (or fast mode's) is no longer the official
    protocol; the result records the number used."""
    import keras
    from scipy import special
    from sklearn.isotonic import IsotonicRegression
    from sklearn.metrics import roc_auc_score

    from caloedu.evaluation.classifier import FAST_EPOCHS, ClassifierResult
    from caloedu.evaluation.metrics import jsd_from_bce

    if epochs is None:
        epochs = runtime.budget(fast=FAST_EPOCHS, full=CALOCHALLENGE["epochs"])
    start = time.perf_counter()
    runtime.set_seed(seed)
    (x_train, y_train), (x_test, y_test), (x_val, y_val) = calochallenge_split(
        np.asarray(reference_inputs, dtype=np.float32), np.asarray(generated_inputs, dtype=np.float32),
        np.random.default_rng(seed))
    model = build_calochallenge_classifier(x_train.shape[1])
    model.compile(
        optimizer=keras.optimizers.Adam(CALOCHALLENGE["learning_rate"], epsilon=CALOCHALLENGE["adam_epsilon"]),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)],  # p > 0.5 on the logit
    )
    best = _best_test_accuracy_callback(progress, epochs)
    history = model.fit(x_train, y_train, validation_data=(x_test, y_test), epochs=epochs,
                        batch_size=CALOCHALLENGE["batch_size"], shuffle=True, callbacks=[best], verbose=verbose)

    def probabilities(x):
        logits = model.predict(x, batch_size=CALOCHALLENGE["batch_size"], verbose=0).reshape(-1)
        return special.expit(logits.astype(np.float64))

    clip = CALOCHALLENGE["calibration_clip"]
    calibration = IsotonicRegression(out_of_bounds="clip", y_min=clip, y_max=1.0 - clip)
    calibration.fit(probabilities(x_test), y_test)
    p_val = calibration.predict(probabilities(x_val))
    bce = float(-np.mean(y_val * np.log(p_val) + (1.0 - y_val) * np.log(1.0 - p_val)))
    return ClassifierResult(
        inputs=inputs, auc=float(roc_auc_score(y_val, p_val)), jsd=jsd_from_bce(bce), bce=bce,
        accuracy=float(np.mean(np.round(p_val) == y_val)), n_train=len(x_train), n_test=len(x_test),
        n_validation=len(x_val), epochs=len(history.history["loss"]), best_epoch=best.best_epoch,
        size="calochallenge", seconds=time.perf_counter() - start, protocol="calochallenge",
    )
