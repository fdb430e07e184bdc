"""The CaloChallenge classifier metric: how well can a neural network tell generated showers from reference ones?

A DNN is trained to label reference showers 0 and generated showers 1. Each class is split 60/20/20 into
train / test / validation (CaloChallenge's names: the *test* split picks the best epoch and fits the
isotonic calibration, the *validation* split is kept apart for the final numbers). Reported on the
validation split, with the calibrated probabilities p:

- AUC of the ROC curve: 0.5 when the classifier cannot tell the samples apart, 1 when it always can;
- JSD = (ln 2 - BCE) / ln 2 with the binary cross-entropy BCE in nats: 0 indistinguishable, 1 disjoint.

Inputs are `low_level_classifier_inputs` (voxels / E_inc) or `high_level_classifier_inputs` (features).

Two protocols, and every result says which gave it:

- ``caloedu`` (default): inputs standardised (high-level ones also whitened), a network sized by ``size``.
  It is stricter than the official one, so its AUCs are NOT comparable with published CaloChallenge figures;
- ``calochallenge``: CaloChallenge's evaluate.py exactly (`caloedu.evaluation.calochallenge_protocol`), the
  one to quote beside published AUCs.
"""

import time
from dataclasses import asdict, dataclass

import numpy as np
from scipy import special

from caloedu import runtime
from caloedu.evaluation.features import (
    compute_features,
    high_level_classifier_inputs,
    low_level_classifier_inputs,
)
from caloedu.evaluation.metrics import jsd_from_bce

# Network and training sizes of the caloedu protocol. 'small' trains in seconds to minutes on a laptop CPU;
# 'large' is the CaloChallenge network and training (3 x 2048 units, Adam lr 2e-4, batch 1000, 50 epochs)
# on caloedu's standardised inputs.
CLASSIFIER_SIZES = {
    "small": {"hidden_units": (256, 256), "learning_rate": 1e-3, "batch_size": 128, "epochs": 30, "patience": 8,
              "dropout": 0.0},
    "large": {"hidden_units": (2048, 2048, 2048), "learning_rate": 2e-4, "batch_size": 1000,
              "epochs": 50, "patience": None, "dropout": 0.0},
}
PROTOCOLS = {
    "caloedu": "standardised (and whitened) inputs: stricter than CaloChallenge's, not comparable with published "
               "AUCs",
    "calochallenge": "CaloChallenge's evaluate.py exactly: comparable with published AUCs",
}
FAST_EPOCHS = 5  # epochs in fast mode (CALOEDU_FAST / nbgrader), unless given explicitly
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)  # train / test / validation, per class


@dataclass
class ClassifierResult:
    """Outcome of one classifier metric run. ``n_*`` count showers of both classes together;
    ``best_epoch`` is 1-based; ``seconds`` is the wall time of training and evaluation."""

    inputs: str
    auc: float
    jsd: float
    bce: float
    accuracy: float
    n_train: int
    n_test: int
    n_validation: int
    epochs: int
    best_epoch: int
    size: str
    seconds: float
    protocol: str = "caloedu"

    def to_dict(self):
        return asdict(self)


def build_classifier(n_inputs, hidden_units=(256, 256), negative_slope=0.2, dropout=0.0, whiten=False):
    """The classifier DNN: input standardisation (and, with ``whiten``, decorrelation), Dense + LeakyReLU
    blocks, one logit. Call `adapt_classifier` with the training inputs before training."""
    import keras

    layers = [keras.Input(shape=(n_inputs,)), keras.layers.Normalization(name="standardise")]
    if whiten:
        # A fixed linear map, filled by adapt_classifier; a Dense layer so a .keras save keeps it.
        layers.append(keras.layers.Dense(n_inputs, trainable=False, name="whiten"))
    for i, units in enumerate(hidden_units):
        layers += [keras.layers.Dense(units, name=f"dense_{i}"),
                   keras.layers.LeakyReLU(negative_slope=negative_slope, name=f"leaky_relu_{i}")]
        if dropout:
            layers.append(keras.layers.Dropout(dropout, name=f"dropout_{i}"))
    layers.append(keras.layers.Dense(1, name="logit"))
    return keras.Sequential(layers, name="shower_classifier")


def adapt_classifier(model, x_train):
    """Fit the input standardisation (mean 0, variance 1 per input) and, when the model has a ``whiten``
    layer, the decorrelation z -> z V / sqrt(lambda) from the eigenvectors V of the training covariance.

    Why whiten high-level inputs: a 5 % energy scale shows up as log10 E_tot - log10 E_inc, the difference
    of two inputs that are 99.9 % correlated. After whitening that direction has unit variance and the
    network finds it in a few epochs; with standardisation alone it drowns in the larger directions.
    """
    normalisation = model.get_layer("standardise")
    normalisation.adapt(x_train)
    if "whiten" not in [layer.name for layer in model.layers]:
        return
    z = np.asarray(normalisation(x_train), dtype=np.float64)  # (N, D) standardised
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(z, rowvar=False))
    # Directions with (almost) no variance (constant inputs) are not blown up to noise of unit size.
    eigenvalues = np.maximum(eigenvalues, 1e-6 * max(eigenvalues.max(), 1e-12))
    kernel = eigenvectors / np.sqrt(eigenvalues)
    bias = -z.mean(axis=0) @ kernel
    model.get_layer("whiten").set_weights([kernel.astype(np.float32), bias.astype(np.float32)])


def split_per_class(n, seed, n_keep=None, fractions=SPLIT_FRACTIONS):
    """Shuffled index arrays (train, test, validation) for one class of ``n`` showers, of which
    ``n_keep`` (default all) are used."""
    n_keep = n if n_keep is None else n_keep
    order = np.random.default_rng(seed).permutation(n)[:n_keep]
    n_train, n_test = int(round(fractions[0] * n_keep)), int(round(fractions[1] * n_keep))
    return order[:n_train], order[n_train:n_train + n_test], order[n_train + n_test:]


def _binary_cross_entropy(labels, probabilities, clip):
    p = np.clip(probabilities, clip, 1.0 - clip)
    return float(-np.mean(labels * np.log(p) + (1.0 - labels) * np.log(1.0 - p)))


def classifier_metric(reference_inputs, generated_inputs, size="small", epochs=None, seed=0,
                      monitor="accuracy", whiten=False, inputs="custom", verbose=0, protocol="caloedu",
                      progress=None):
    """Train the classifier on reference (label 0) vs generated (label 1) inputs and score it.

    Args:
        reference_inputs, generated_inputs: (N_ref, D) and (N_gen, D) classifier inputs. The larger
            sample is cut to the size of the smaller so that both classes weigh the same (the JSD
            assumes equal priors).
        size: 'small' (default; CPU-friendly) or 'calochallenge' (see `CLASSIFIER_SIZES`).
        epochs: maximum epochs; defaults to the size's value, or `FAST_EPOCHS` in fast mode.
        seed: seeds the splits and the network (`caloedu.runtime.set_seed`).
        monitor: 'accuracy' (CaloChallenge) or 'loss' on the test split chooses the best epoch.
        whiten: decorrelate the inputs as well as standardise them (see `adapt_classifier`); meant for
            the few high-level inputs, not for thousands of voxels.
        inputs: a label stored in the result ('low', 'high').
        protocol: 'caloedu' or 'calochallenge' (see the module docstring; the latter ignores size, monitor
            and whiten, which it fixes).
        progress: optional ``callback(epochs_done, epochs)`` after each epoch (a progress bar).

    Returns:
        `ClassifierResult` with the validation AUC and JSD after isotonic calibration on the test split.
    """
    import keras
    from sklearn.isotonic import IsotonicRegression
    from sklearn.metrics import roc_auc_score

    if protocol not in PROTOCOLS:
        raise ValueError(f"Unknown classifier protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}.")
    if size not in CLASSIFIER_SIZES:
        raise ValueError(f"Unknown classifier size {size!r}; choose one of {', '.join(CLASSIFIER_SIZES)}.")
    if monitor not in ("accuracy", "loss"):
        raise ValueError(f"monitor must be 'accuracy' or 'loss', got {monitor!r}.")
    reference_inputs = np.asarray(reference_inputs, dtype=np.float32)
    generated_inputs = np.asarray(generated_inputs, dtype=np.float32)
    if reference_inputs.ndim != 2 or reference_inputs.shape[1:] != generated_inputs.shape[1:]:
        raise ValueError(
            f"Classifier inputs must be (N, D) arrays of the same D; got {reference_inputs.shape} "
            f"and {generated_inputs.shape}."
        )
    n_per_class = min(len(reference_inputs), len(generated_inputs))
    if n_per_class < 10:
        raise ValueError(f"The classifier metric needs at least 10 showers per sample, got {n_per_class}.")
    if protocol == "calochallenge":
        from caloedu.evaluation.calochallenge_protocol import calochallenge_classifier_metric

        return calochallenge_classifier_metric(reference_inputs, generated_inputs, epochs=epochs, seed=seed,
                                               inputs=inputs, verbose=verbose, progress=progress)
    config = CLASSIFIER_SIZES[size]
    if epochs is None:
        epochs = runtime.budget(fast=min(FAST_EPOCHS, config["epochs"]), full=config["epochs"])
    start = time.perf_counter()
    runtime.set_seed(seed)

    # Per class 60/20/20, so every split holds both classes equally.
    splits = {"train": [], "test": [], "validation": []}
    for label, data in ((0.0, reference_inputs), (1.0, generated_inputs)):
        for name, index in zip(splits, split_per_class(len(data), seed + int(label), n_per_class)):
            splits[name].append((data[index], np.full(len(index), label, dtype=np.float32)))
    (x_train, y_train), (x_test, y_test), (x_val, y_val) = (
        (np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])) for parts in splits.values()
    )

    model = build_classifier(x_train.shape[1], config["hidden_units"], dropout=config["dropout"], whiten=whiten)
    adapt_classifier(model, x_train)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config["learning_rate"]),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)],  # threshold on the logit
    )
    # The best epoch by test accuracy (or loss) is restored at the end, as in CaloChallenge.
    best = keras.callbacks.EarlyStopping(
        monitor=f"val_{monitor}", mode="max" if monitor == "accuracy" else "min",
        patience=config["patience"] or epochs, restore_best_weights=True,
    )
    history = model.fit(
        x_train, y_train, validation_data=(x_test, y_test), epochs=epochs,
        batch_size=config["batch_size"], shuffle=True, callbacks=[best, *_progress_callbacks(progress, epochs)],
        verbose=verbose,
    )

    def probabilities(x):
        logits = model.predict(x, batch_size=max(config["batch_size"], 1024), verbose=0).reshape(-1)
        return special.expit(logits.astype(np.float64))  # no overflow warnings for large negative logits

    calibration = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    calibration.fit(probabilities(x_test), y_test)
    p_val = calibration.predict(probabilities(x_val))
    # Isotonic calibration gives p = 0 or 1 where the test split happens to hold one class only; the
    # test split cannot resolve probabilities below half a count, so p is clipped there (else a single
    # shower costs -ln(1e-7) = 16 nats and small samples get JSD < 0).
    bce = _binary_cross_entropy(y_val, p_val, clip=0.5 / len(x_test))
    return ClassifierResult(
        inputs=inputs,
        auc=float(roc_auc_score(y_val, p_val)),
        jsd=jsd_from_bce(bce),
        bce=bce,
        accuracy=float(np.mean((p_val > 0.5) == (y_val > 0.5))),
        n_train=len(x_train),
        n_test=len(x_test),
        n_validation=len(x_val),
        epochs=len(history.history["loss"]),
        best_epoch=int(best.best_epoch) + 1,
        size=size,
        seconds=time.perf_counter() - start,
    )


def _progress_callbacks(progress, epochs):
    """A Keras callback that calls ``progress(epochs_done, epochs)`` after each epoch (none without one)."""
    if progress is None:
        return []
    import keras

    return [keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: progress(epoch + 1, epochs))]


def classifier_metrics(reference, generated, geometry, inputs=("low", "high"), reference_features=None,
                       generated_features=None, **kwargs):
    """The classifier metric on low-level and/or high-level inputs: {'low': ClassifierResult, 'high': ...}.

    Args:
        reference, generated: (incident_energies (N, 1) MeV, showers (N, n_voxels) MeV) pairs.
        geometry: their `CalorimeterGeometry`.
        inputs: which of 'low' and 'high' to run.
        reference_features, generated_features: precomputed `HighLevelFeatures` to reuse (optional).
        **kwargs: passed to `classifier_metric` (protocol, size, epochs, seed, monitor, verbose, progress).
    """
    results = {}
    for kind in inputs:
        if kind == "low":
            x_ref = low_level_classifier_inputs(*reference, geometry)
            x_gen = low_level_classifier_inputs(*generated, geometry)
        elif kind == "high":
            ref_f = reference_features if reference_features is not None else compute_features(*reference, geometry)
            gen_f = generated_features if generated_features is not None else compute_features(*generated, geometry)
            x_ref = high_level_classifier_inputs(*reference, geometry, features=ref_f)
            x_gen = high_level_classifier_inputs(*generated, geometry, features=gen_f)
        else:
            raise ValueError(f"Classifier inputs are 'low' or 'high', got {kind!r}.")
        results[kind] = classifier_metric(x_ref, x_gen, inputs=kind, whiten=(kind == "high"), **kwargs)
    return results
