"""The contract every caloedu generator follows (flow matching now; GAN, VAE, flow, autoregressive later).

A generator is a `keras.Model` conditioned on the incident energy. Users only ever see showers in MeV::

    gen = FlowMatchingGenerator(CalorimeterGeometry.preset("teaching"))
    gen.fit(incident_energies, showers, epochs=20, batch_size=256, validation_split=0.1)
    generated = gen.sample(incident_energies, batch_size=10_000, seed=1)   # (N, n_voxels) MeV
    gen.save("model.keras")
    gen = caloedu.load_model("model.keras")                                # and fit() goes on

- ``fit(incident_energies (N, 1) MeV, showers (N, n_voxels) MeV, epochs, batch_size, validation_split,
  validation_data=(incident_energies, showers), callbacks, verbose, shuffle, initial_epoch)`` checks
  the showers against the geometry, fits the preprocessing on the first call (later calls reuse it),
  maps the showers to the network's space and runs ``keras.Model.fit`` on them: Keras sees the
  preprocessed showers as ``x`` and the energy condition as ``y``, the subclass's ``train_step``
  computes its loss. Progress bar, callbacks and History are Keras'; `keras.callbacks.TerminateOnNaN`
  is added unless given. An uncompiled generator compiles itself with Adam(``learning_rate``) and
  an EMA of the weights (`default_optimizer`); ``compile(optimizer=...)`` first to choose another.
- ``sample(incident_energies, batch_size=..., seed=None, **options) -> (N, n_voxels) float32 MeV`` in the
  geometry's voxel order, >= 0, and every voxel below ``threshold_mev`` set to 0 as the readout does.
  The same seed gives the same showers (on the same device and weights).
- ``.keras`` files keep the geometry and the fitted preprocessing (in the config), the weights and the
  optimizer state, so a loaded generator samples identically and resumes training.

Subclasses implement ``train_step`` / ``test_step`` (``self.batch_tensors(data)`` gives the batch's
(x, condition) tensors on the device, ``self.optimizer_step(loss)`` one update, ``self.loss_tracker``
the reported loss), and ``generate(condition (N, 1) float32 in [0, 1],
seed, batch_size, **options) -> (N, n_features)`` preprocessed showers; and extend ``get_config``.
"""

import keras
import numpy as np

from caloedu.data import CalorimeterGeometry
from caloedu.data.transforms import LogEnergyCondition, serialize
from caloedu.generators import preprocessing as prep

DEFAULT_THRESHOLD_MEV = 0.01515  # the simulator's and CaloChallenge DS2's 15.15 keV readout threshold


def check_incident_energies(incident_energies, what="incident_energies"):
    """(N, 1) float64 MeV, or a ValueError saying what is wrong."""
    energies = np.asarray(incident_energies, dtype=np.float64)
    if energies.ndim == 1:
        energies = energies[:, None]
    if energies.ndim != 2 or energies.shape[1] != 1:
        raise ValueError(f"{what} must have shape (N,) or (N, 1) in MeV, got {np.shape(incident_energies)}.")
    if not np.all(np.isfinite(energies)):
        raise ValueError(f"{what} holds {int((~np.isfinite(energies)).sum())} NaN or inf values.")
    if np.any(energies <= 0):
        raise ValueError(f"{what} must be positive (MeV); the smallest is {energies.min():g}.")
    return energies


def check_showers(showers, geometry, n_rows, what="showers"):
    """Showers as a float array (N, n_voxels) that fits ``geometry``, finite and >= 0, or a ValueError."""
    showers = np.asarray(showers)
    geometry.check_showers(showers, what)
    if len(showers) != n_rows:
        raise ValueError(f"{what} has {len(showers)} rows but there are {n_rows} incident_energies; "
                         "every shower needs one incident energy.")
    if not np.all(np.isfinite(showers)):
        raise ValueError(f"{what} holds {int((~np.isfinite(showers)).sum())} NaN or inf voxel energies.")
    if np.any(showers < 0):
        raise ValueError(f"{what} holds negative voxel energies (the smallest is {showers.min():g} MeV); "
                         "energies in MeV must be >= 0.")
    return showers


class ShowerGenerator(keras.Model):
    """Base class of the generators: preprocessing, validation, ``fit`` and ``sample`` (see the module docstring).

    Args:
        geometry: `CalorimeterGeometry` (or its config dict, or a preset name).
        preprocessing: 'voxel-ratios', 'energy-ratios', 'log-ratios' or 'energy-log-ratios'
            (`caloedu.generators.preprocessing`).
        energy_range: (min, max) incident energy in MeV that the condition maps to [0, 1] (log scale).
        threshold_mev: voxels below it are set to 0 in generated showers.
        logit_alpha: the logit's alpha (x' = alpha + (1 - 2 alpha) x); empty voxels sit at ln(alpha).
        learning_rate: Adam's learning rate when ``fit`` compiles the generator itself.
        ema_momentum: keep an exponential moving average of the weights (used for sampling once ``fit``
            returns); None switches it off.
        preprocessing_state: the fitted preprocessing chain's config (set by ``fit``, kept in .keras files).
    """

    def __init__(self, geometry, preprocessing="energy-ratios", energy_range=(1e3, 1e6),
                 threshold_mev=DEFAULT_THRESHOLD_MEV, logit_alpha=1e-6, learning_rate=1e-3, ema_momentum=0.999,
                 preprocessing_state=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(geometry, dict):
            geometry = CalorimeterGeometry.from_config(geometry)
        elif isinstance(geometry, str):
            geometry = CalorimeterGeometry.from_name_or_path(geometry)
        if preprocessing not in prep.PREPROCESSINGS:
            raise ValueError(f"Unknown preprocessing {preprocessing!r}; "
                             f"choose one of {', '.join(prep.PREPROCESSINGS)}.")
        if threshold_mev < 0:
            raise ValueError(f"threshold_mev must be >= 0 MeV, got {threshold_mev}.")
        self.geometry = geometry
        self.preprocessing = preprocessing
        self.energy_range = tuple(float(e) for e in energy_range)
        self.energy_condition = LogEnergyCondition(*self.energy_range)  # validates the range
        self.threshold_mev = float(threshold_mev)
        self.logit_alpha = float(logit_alpha)
        self.learning_rate = float(learning_rate)
        self.ema_momentum = None if ema_momentum is None else float(ema_momentum)
        self.chain = prep.chain_from_config(preprocessing_state)
        self.loss_tracker = keras.metrics.Mean(name="loss")

    # --- sizes and preprocessing --------------------------------------------------------------
    @property
    def n_features(self):
        """Width of the preprocessed showers the network sees."""
        return prep.n_features(self.preprocessing, self.geometry)

    @property
    def is_fitted(self):
        return self.chain is not None

    def condition(self, incident_energies):
        """log E_inc mapped to [0, 1] over ``energy_range``: (N, 1) float32."""
        return self.energy_condition.forward(incident_energies).astype(np.float32)

    def preprocess(self, incident_energies, showers):
        """(x (N, n_features) float32, condition (N, 1) float32) from raw showers; fits the chain if needed."""
        incident_energies = check_incident_energies(incident_energies)
        showers = check_showers(showers, self.geometry, len(incident_energies))
        if self.chain is None:
            # The log recipes need a positive threshold to place empty voxels, even when no cut is applied.
            chain = prep.make_preprocessing(self.preprocessing, self.geometry, self.logit_alpha,
                                            self.threshold_mev or DEFAULT_THRESHOLD_MEV)
            self.chain = prep.fit_preprocessing(chain, showers, incident_energies)
        return prep.apply_forward(self.chain, showers, incident_energies), self.condition(incident_energies)

    def postprocess(self, x, incident_energies):
        """Showers (N, n_voxels) float32 MeV from preprocessed ``x``: inverse chain, then the readout threshold."""
        showers = prep.apply_inverse(self.chain, np.asarray(x, dtype=np.float64), incident_energies)
        showers[showers < self.threshold_mev] = 0.0
        return showers

    # --- training -----------------------------------------------------------------------------
    def default_optimizer(self):
        """Adam(``learning_rate``) with an EMA of the weights: what ``fit`` compiles with when the user did not."""
        return keras.optimizers.Adam(learning_rate=self.learning_rate, use_ema=self.ema_momentum is not None,
                                     ema_momentum=self.ema_momentum or 0.99)

    @property
    def metrics(self):
        return [self.loss_tracker]

    def fit(self, incident_energies=None, showers=None, epochs=1, batch_size=256, validation_split=0.0,
            validation_data=None, callbacks=None, verbose="auto", shuffle=True, initial_epoch=0, **kwargs):
        """Train on raw showers (see the module docstring). Returns Keras' ``History``."""
        if incident_energies is None or showers is None:
            raise ValueError("fit needs incident_energies (N, 1) MeV and showers (N, n_voxels) MeV.")
        if not 0 <= validation_split < 1:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split}.")
        x, condition = self.preprocess(incident_energies, showers)
        if validation_data is not None:
            validation_data = self.preprocess(*validation_data)
        if not self.compiled:
            self.compile(optimizer=self.default_optimizer())  # no loss: train_step computes it
        callbacks = list(callbacks or [])
        if not any(isinstance(c, keras.callbacks.TerminateOnNaN) for c in callbacks):
            callbacks.append(keras.callbacks.TerminateOnNaN())
        return super().fit(x, condition, epochs=epochs, batch_size=batch_size, validation_split=validation_split,
                           validation_data=validation_data, callbacks=callbacks, verbose=verbose, shuffle=shuffle,
                           initial_epoch=initial_epoch, **kwargs)

    def optimizer_step(self, loss):
        """Backpropagate ``loss`` (a scalar torch tensor) and apply one optimizer step to all trainable
        weights. The EMA momentum warms up as min(ema_momentum, (1 + n) / (10 + n)) after n steps, so
        that a short (time-budgeted) training does not sample from an average of its first, random weights."""
        import torch

        self.zero_grad()
        loss.backward()
        weights = self.trainable_weights
        if self.ema_momentum is not None and getattr(self.optimizer, "use_ema", False):
            steps = int(self.optimizer.iterations)
            self.optimizer.ema_momentum = min(self.ema_momentum, (1.0 + steps) / (10.0 + steps))
        with torch.no_grad():
            self.optimizer.apply([w.value.grad for w in weights], weights)

    def batch_tensors(self, data):
        """(x, condition) float32 tensors on the compute device from a Keras batch. Batches from Keras'
        torch data loader stay on the CPU, so they are moved here."""
        x, condition = data[0], data[1]
        return (keras.ops.convert_to_tensor(x, dtype="float32"),
                keras.ops.convert_to_tensor(condition, dtype="float32"))

    # --- sampling -----------------------------------------------------------------------------
    def sample(self, incident_energies, batch_size=10_000, seed=None, **options):
        """Generate one shower per incident energy.

        Args:
            incident_energies: (N,) or (N, 1) MeV.
            batch_size: showers per network batch.
            seed: int for reproducible showers (None: fresh randomness).
            **options: passed to the subclass's ``generate`` (e.g. ``solver``, ``steps``).
        Returns:
            showers (N, n_voxels) float32 MeV, >= 0, zero below ``threshold_mev``.
        """
        if not self.is_fitted:
            raise ValueError("This generator has not been trained yet: call fit(incident_energies, showers) first.")
        incident_energies = check_incident_energies(incident_energies)
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        x = self.generate(self.condition(incident_energies), seed=seed, batch_size=int(batch_size), **options)
        return self.postprocess(x, incident_energies)

    def generate(self, condition, seed=None, batch_size=10_000, **options):
        raise NotImplementedError

    # --- serialization ------------------------------------------------------------------------
    def get_config(self):
        config = super().get_config()
        config.update(
            geometry=self.geometry.get_config(),
            preprocessing=self.preprocessing,
            energy_range=list(self.energy_range),
            threshold_mev=self.threshold_mev,
            logit_alpha=self.logit_alpha,
            learning_rate=self.learning_rate,
            ema_momentum=self.ema_momentum,
            preprocessing_state=None if self.chain is None else serialize(self.chain),
        )
        return config
