"""The contract every caloedu generator follows: flow matching, normalizing flows, GANs, VAEs,
autoregressive and set models alike.

A generator is a `keras.Model` conditioned on the incident energy. Users only ever see showers in MeV::

    gen = FlowMatchingGenerator(CalorimeterGeometry.preset("teaching"))      # options: FlowMatchingOptions
    gen.fit(incident_energies, showers, epochs=20, batch_size=256, callbacks=[TrainingBudget(minutes=10)])
    generated = gen.sample(incident_energies, batch_size=10_000, seed=1)      # (N, n_voxels) float32 MeV
    gen.log_prob(incident_energies, showers)                                  # (N,) nats, families with a likelihood
    gen.save("model.keras")
    gen = caloedu.load_model("model.keras")                                   # samples the same, fit() goes on

What the base does (once, for every family):

- **Options.** ``options_class`` (a dataclass, `caloedu.generators.options`) holds the family's options with
  their documented defaults; ``gen.options`` is the validated instance, ``get_config`` stores it.
- **Representation.** ``options.preprocessing`` names a `caloedu.data.representation` (voxel features or
  point clouds). ``fit`` checks the showers, fits the representation on its first call (later calls reuse it,
  and so does a loaded file) and hands Keras the features as ``x`` and the condition (log E_inc mapped to
  [0, 1] over ``energy_range``) as ``y``. Networks read ``gen.layout`` (what sits where in the features).
- **Training.** Keras ``fit`` with the base's ``train_step``: the batch is moved to the device, the family's
  ``train_batch`` does the update, the base counts ``training_steps`` and ``showers_seen`` (saved, so a
  budget in showers reproduces a run), updates the EMA of the weights and the loss trackers, one per name in
  ``loss_names`` (what the progress bar and History show). A loss that turns NaN stops training with a
  `TrainingDiverged` error that says what to do.
- **Optimizers.** ``optimizer_weights()`` names each optimizer and the weights it updates (one, "optimizer",
  by default; a GAN has "critic" and "generator"), ``default_optimizers()`` builds them (Adam with the options'
  learning rates) when ``fit`` finds the generator uncompiled; ``compile(optimizer={"critic": ...})`` chooses
  others. Every optimizer's state is saved in the .keras file and restored, so training resumes exactly.
  ``optimizer_step(loss, name)`` is one update of one optimizer.
- **EMA.** With ``ema_momentum`` the base keeps a moving average of ``sampler_weights()`` (momentum warming up
  as min(momentum, (1 + n) / (10 + n)) after n steps, so a short training does not sample from an average of
  its first, random weights); ``sample`` and ``log_prob`` use the average, training goes on from the raw weights.
- **Sampling.** ``sample`` validates the energies, draws from ``numpy.random.default_rng(seed)``, runs the
  family's ``generate`` batch by batch (at most ``CPU_BATCH_LIMIT`` showers per network call on a CPU, where
  larger batches spill out of the caches) under ``torch.no_grad`` on the weights' device, and undoes the
  representation: showers in MeV, >= 0, every voxel below ``threshold_mev`` set to 0 as the readout does.
  The same seed gives the same showers (on the same device and weights).
- **Likelihood.** ``log_prob(incident_energies, showers)`` is log p(shower | E_inc) in nats per shower, as a
  density in MeV^n_voxels, for families with a likelihood (exact for flows and autoregressive models, a lower
  bound for VAEs). Empty voxels make a shower partly discrete, so the density is defined for the
  *dequantised* shower: every empty voxel (0, below the readout threshold E_thr) is replaced by E_thr u with
  u ~ U(0, 1], the same definition for every family. Equivalently, log P(which voxels are empty, the hit
  energies) >= E_u[log_prob] + n_empty ln(E_thr / MeV). It adds the representation's log |det dx / dE|, so it
  needs a representation with a density (`caloedu.data.representation.DENSITY_RECIPES`; the 'energy-*' recipes
  have redundant features and none).

What a family implements:

- ``options_class`` and ``build_networks()`` (its layers, built, from ``self.options`` and ``self.layout``);
- ``compute_losses(x, condition) -> {name: scalar tensor}`` with the names of ``loss_names``; the first is what
  a single optimizer minimises. A family with several optimizers overrides ``train_batch(x, condition)``
  (calling ``optimizer_step`` for each) and ``optimizer_weights`` / ``default_optimizers``;
- ``generate(condition (B, 1) tensor, rng, **sampling options) -> features`` (a tensor, or a tuple for point
  clouds): one batch of showers in the representation's space, drawing its noise from ``rng`` (numpy);
  ``sampling_options_class`` lists the options ``sample`` accepts (an ODE solver, say);
- optionally ``feature_log_prob(x, condition) -> (B,)`` (the likelihood; with ``likelihood_is_bound``, a
  Monte Carlo lower bound that draws from an ``rng`` argument, which ``log_prob`` seeds), ``sampler_weights()`` (the weights
  that sampling uses; a GAN's generator), ``adapt(incident_energies, showers)`` (data-dependent state fitted on
  the first ``fit``), ``representation_kinds`` and ``smoke_options`` (tiny sizes for tests),
  ``training_batches`` (its own batches, a `keras.utils.PyDataset`: MDMA groups clouds of similar size) and
  ``default_batch_size`` (what the CLI and the benches train with), and ``test_step``
  (validation runs ``compute_losses`` under ``torch.no_grad``; losses that need gradients, such as a gradient
  penalty, need their own).
"""

import contextlib
import warnings

import keras
import numpy as np

from caloedu.data.checks import check_energy_units, check_incident_energies, check_positive_int, check_showers
from caloedu.data.geometry import CalorimeterGeometry
from caloedu.data.representation import density_recipes_sentence, dequantize, make_representation
from caloedu.data.transforms import LogEnergyCondition
from caloedu.generators.callbacks import NaNGuard
from caloedu.generators.ema import holding, update_moving_average, warmed_up_momentum
from caloedu.generators.optimizers import NamedOptimizers
from caloedu.generators.options import GeneratorOptions, SamplingOptions

TRAINED_RANGE_MARGIN = 1.02  # sample warns for incident energies beyond the trained range by more than this factor
CPU_BATCH_LIMIT = 1024  # showers per network call when sampling on a CPU (see the module docstring)
_KERAS_ARGUMENTS = ("name", "trainable", "dtype")


def _tree_to_numpy(value):
    if isinstance(value, (tuple, list)):
        return tuple(_tree_to_numpy(v) for v in value)
    return keras.ops.convert_to_numpy(value)


def _split_rows(x, cut):
    """(x[:cut], x[cut:]) of an array or of a tuple of arrays (a point cloud's points and mask)."""
    if isinstance(x, tuple):
        return tuple(v[:cut] for v in x), tuple(v[cut:] for v in x)
    return x[:cut], x[cut:]


def _concatenate(parts):
    if isinstance(parts[0], tuple):
        return tuple(np.concatenate(items) for items in zip(*parts))
    return np.concatenate(parts)


class ShowerGenerator(NamedOptimizers, keras.Model):
    """Base class of the generators (the contract is the module docstring).

    Args:
        geometry: `CalorimeterGeometry` (or its config dict, or a preset name, or a binning .xml).
        preprocessing_state: the fitted representation (set by ``fit``, kept in .keras files).
        trained_energy_range: (min, max) MeV of the incident energies trained on (set by ``fit``, kept likewise).
        **options: the family's options (``options_class``), and Keras' ``name``.
    """

    family = None  # the registry name, set by `caloedu.generators.registry`
    options_class = GeneratorOptions
    sampling_options_class = SamplingOptions
    loss_names = ("loss",)
    representation_kinds = ("voxels",)
    trains_on_dequantized = False  # a likelihood family learns the density of dequantised showers (log_prob's)
    likelihood_is_bound = False  # feature_log_prob is a lower bound drawn at random (a VAE's): it takes an rng
    likelihood_options = {}  # options a family needs for its likelihood when its defaults have none (a VAE's decoder)
    smoke_options = {}  # options for a minimal instance that trains in a second (tests, demos)
    default_batch_size = 256  # what the CLI and the benches train with unless told (--batch-size)

    def __init__(self, geometry, preprocessing_state=None, trained_energy_range=None, **options):
        super().__init__(**{key: options.pop(key) for key in _KERAS_ARGUMENTS if key in options})
        self.geometry = CalorimeterGeometry.coerce(geometry)
        self.options = self.options_class.create(self.family or type(self).__name__, **options)
        self.representation = make_representation(self.options.preprocessing, self.geometry, self.options.logit_alpha,
                                                  self.options.threshold_mev, state=preprocessing_state)
        if self.representation.kind not in self.representation_kinds:
            raise ValueError(f"{self.family} works on {' or '.join(self.representation_kinds)}, not on the "
                             f"'{self.options.preprocessing}' representation ({self.representation.kind}).")
        self.energy_condition = LogEnergyCondition(*self.options.energy_range)
        # (min, max) MeV of the incident energies trained on (None before training): sample warns outside it.
        self.trained_energy_range = None if trained_energy_range is None else tuple(map(float, trained_energy_range))
        self.trackers = [keras.metrics.Mean(name=name) for name in self.loss_names]
        self.training_steps = self.add_weight(shape=(), dtype="int64", initializer="zeros", trainable=False,
                                              name="training_steps")
        self.showers_seen = self.add_weight(shape=(), dtype="int64", initializer="zeros", trainable=False,
                                            name="showers_seen")
        self.seed_generator = keras.random.SeedGenerator(self.options.seed)
        self.build_networks()
        unbuilt = [layer.name for layer in self._flatten_layers(include_self=False) if not layer.built]
        if unbuilt:
            raise ValueError(f"{type(self).__name__}.build_networks must build every layer it makes (call "
                             f"layer.build(input_shape)); not built: {', '.join(unbuilt)}.")
        # Plain attributes (object.__setattr__): Keras would track a container of weights as weights of the model.
        object.__setattr__(self, "_sampled", tuple(self.sampler_weights()))
        self.ema_weights = [] if self.options.ema_momentum is None else [
            self.add_weight(shape=w.shape, initializer="zeros", trainable=False, name=f"ema_{i}")
            for i, w in enumerate(self._sampled)]
        self._host_steps = None  # training_steps mirrored in Python during fit (no device sync per step)
        self.built = True  # every weight exists now, so a .keras file loads straight into them

    # --- what a family provides -----------------------------------------------------------------
    def build_networks(self):
        raise NotImplementedError(f"{type(self).__name__} must build its networks in build_networks().")

    def compute_losses(self, x, condition):
        raise NotImplementedError(f"{type(self).__name__} must compute its losses in compute_losses().")

    def generate(self, condition, rng, **options):
        raise NotImplementedError(f"{type(self).__name__} must turn conditions into features in generate().")

    def feature_log_prob(self, x, condition):
        raise NotImplementedError

    def adapt(self, incident_energies, showers):
        """Fit data-dependent state on the first ``fit`` (after the representation); nothing by default."""

    def sampler_weights(self):
        """The weights sampling uses (and the EMA averages): all trainable weights by default."""
        return self.trainable_weights

    def inverse_options(self):
        """Keyword arguments of the representation's ``inverse`` (MDMA: what colliding hits do); none by default."""
        return {}

    def training_batches(self, x, condition, batch_size, shuffle):
        """What Keras' ``fit`` trains on: None (Keras cuts the arrays into batches), or a
        `keras.utils.PyDataset` of (x, condition) batches (MDMA groups point clouds of similar size)."""
        return None

    def quality_report(self, incident_energies, showers):
        """Lines the bench prints about held-out showers beyond the classifier: the log-likelihood for a family
        with one (a VAE adds its bounds and the KL per latent dimension)."""
        if not (self.has_likelihood() and self.representation.has_density):
            return []
        log_p = self.log_prob(incident_energies, showers)
        return [f"log-likelihood of the held-out showers: {log_p.mean():.1f} nats per shower (dequantised, MeV space)"]

    @classmethod
    def has_likelihood(cls):
        return cls.feature_log_prob is not ShowerGenerator.feature_log_prob

    def count_trainable_params(self):
        """Number of trained parameters (``count_params`` also counts the EMA copies and the counters)."""
        return int(sum(np.prod(w.shape) for w in self.trainable_weights))

    # --- representation and condition -----------------------------------------------------------
    @property
    def layout(self):
        """Where things sit in the features the networks see (`caloedu.data.representation`)."""
        return self.representation.layout

    @property
    def is_fitted(self):
        return self.representation.is_fitted

    def condition(self, incident_energies):
        """log E_inc mapped to [0, 1] over ``energy_range``: (N, 1) float32."""
        return self.energy_condition.forward(incident_energies).astype(np.float32)

    def preprocess(self, incident_energies, showers, check_units=False):
        """(features, condition (N, 1) float32) from raw showers; fits the representation on the first call.
        ``check_units`` refuses energies that look like GeV (`caloedu.data.checks.check_energy_units`). A family
        that ``trains_on_dequantized`` sees its showers dequantised (as ``log_prob`` defines the density)."""
        incident_energies = check_incident_energies(incident_energies)
        showers = check_showers(showers, self.geometry, len(incident_energies))
        if check_units:
            check_energy_units(incident_energies, showers, "fit(incident_energies, showers)")
        if self.trains_on_dequantized:
            # fresh noise for each fit (a resumed fit draws anew), reproducible with the options' seed
            seed = None if self.options.seed is None else (self.options.seed, int(self.showers_seen))
            showers = dequantize(showers, self.representation.threshold_mev, np.random.default_rng(seed))
        if not self.representation.is_fitted:
            self.representation.fit(incident_energies, showers)
            self.adapt(incident_energies, showers)
        features = self.representation.forward(incident_energies, showers, seed=self.options.seed)
        return (tuple(features) if isinstance(features, tuple) else features), self.condition(incident_energies)

    def postprocess(self, features, incident_energies):
        """Showers (N, n_voxels) float32 MeV from features: the inverse representation, then the readout threshold."""
        showers = self.representation.inverse(incident_energies, features, **self.inverse_options())
        showers[showers < self.options.threshold_mev] = 0.0
        return showers

    # --- training -------------------------------------------------------------------------------------
    @property
    def metrics(self):
        return self.trackers

    def batch_tensors(self, data):
        """(x, condition) tensors on the compute device from a Keras batch: batches from Keras' torch data
        loader stay on the CPU, so they are moved here. Point clouds come as (points, mask)."""
        x, condition = data[0], data[1]

        def move(value):
            if isinstance(value, (tuple, list)):
                return tuple(move(v) for v in value)
            dtype = "bool" if keras.backend.standardize_dtype(value.dtype) == "bool" else "float32"
            return keras.ops.convert_to_tensor(value, dtype=dtype)

        return move(x), keras.ops.convert_to_tensor(condition, dtype="float32")

    def train_batch(self, x, condition):
        """One update on a batch: the losses, then one optimizer step on the first of them."""
        losses = self.compute_losses(x, condition)
        self.optimizer_step(losses[self.loss_names[0]], next(iter(self._optimizer_groups)))
        return losses

    def train_step(self, data):
        x, condition = self.batch_tensors(data)
        losses = self.train_batch(x, condition)
        self._count_step(int(condition.shape[0]))
        return self._track(losses)

    def test_step(self, data):
        import torch

        x, condition = self.batch_tensors(data)
        with torch.no_grad():
            return self._track(self.compute_losses(x, condition))

    def _track(self, losses):
        for tracker in self.trackers:
            tracker.update_state(losses[tracker.name])
        return {tracker.name: tracker.result() for tracker in self.trackers}

    def _count_step(self, batch_size):
        if self._host_steps is None:
            self._host_steps = int(keras.ops.convert_to_numpy(self.training_steps))
        if self.ema_weights:
            update_moving_average(self.ema_weights, self._sampled,
                                  warmed_up_momentum(self.options.ema_momentum, self._host_steps))
        self._host_steps += 1
        self.training_steps.assign_add(1)
        self.showers_seen.assign_add(batch_size)

    def fit(self, incident_energies=None, showers=None, epochs=1, batch_size=256, validation_split=0.0,
            validation_data=None, callbacks=None, verbose="auto", shuffle=True, initial_epoch=0, check_units=True,
            **kwargs):
        """Train on raw showers (see the module docstring). Returns Keras' ``History``.

        Args:
            incident_energies: (N,) or (N, 1) MeV.  showers: (N, n_voxels) MeV.
            validation_data: optional (incident_energies, showers) to report ``val_*`` losses on.
            check_units: refuse energies that look like GeV (`caloedu.data.checks.check_energy_units`).
            The other arguments are Keras' ``fit``'s.
        Raises:
            TrainingDiverged: a loss became NaN or infinite (the message says what to do).
        """
        if incident_energies is None or showers is None:
            raise ValueError("fit needs incident_energies (N, 1) MeV and showers (N, n_voxels) MeV.")
        if not 0 <= validation_split < 1:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split}.")
        batch_size = check_positive_int(batch_size, "batch_size")
        x, condition = self.preprocess(incident_energies, showers, check_units=check_units)
        self._record_energy_range(incident_energies)
        if validation_data is not None:
            validation_data = self.preprocess(*validation_data)
        if not self.compiled:
            self.compile()
        guard = NaNGuard()
        self._host_steps = None
        arguments = dict(epochs=epochs, validation_data=validation_data, callbacks=[*(callbacks or []), guard],
                         verbose=verbose, initial_epoch=initial_epoch, **kwargs)
        if validation_split and validation_data is None:  # as Keras does: the last fraction, before shuffling
            cut = int(len(condition) * (1.0 - validation_split))
            head, tail = _split_rows(x, cut)
            x, arguments["validation_data"] = head, (tail, condition[cut:])
            condition = condition[:cut]
        batches = self.training_batches(x, condition, batch_size, shuffle)
        if batches is None:
            history = super().fit(x, condition, batch_size=batch_size, shuffle=shuffle, **arguments)
        else:
            history = super().fit(batches, **arguments)
        guard.raise_if_diverged(self.family or type(self).__name__)
        return history

    def _record_energy_range(self, incident_energies):
        energies = np.asarray(incident_energies, dtype=np.float64)
        low, high = float(energies.min()), float(energies.max())
        if self.trained_energy_range is not None:
            low, high = min(low, self.trained_energy_range[0]), max(high, self.trained_energy_range[1])
        self.trained_energy_range = (low, high)

    def energies_outside_training(self, incident_energies):
        """A sentence saying how many of ``incident_energies`` (MeV) lie outside the range trained on, or None."""
        if self.trained_energy_range is None:
            return None
        low, high = self.trained_energy_range
        energies = np.asarray(incident_energies, dtype=np.float64).reshape(-1)
        # A margin of 2 %: showers trained on 1-1000 GeV asked for at exactly 1 GeV are not an extrapolation.
        outside = (energies < low / TRAINED_RANGE_MARGIN) | (energies > high * TRAINED_RANGE_MARGIN)
        if not outside.any():
            return None
        return (f"{int(outside.sum())} of {len(energies)} incident energies ({energies[outside].min():.4g} to "
                f"{energies[outside].max():.4g} MeV) lie outside the range this {self.family} generator was trained "
                f"on ({low:.4g} to {high:.4g} MeV): its showers there are extrapolations.")

    # --- EMA -------------------------------------------------------------------------------------------
    def averaged_weights(self):
        """Context in which the sampling weights hold their moving average (when there is one and training has
        started); afterwards they hold the trained weights again."""
        if not self.ema_weights or int(keras.ops.convert_to_numpy(self.training_steps)) == 0:
            return contextlib.nullcontext()
        return holding(self._sampled, self.ema_weights)

    # --- sampling and likelihood -------------------------------------------------------------------------
    def compute_device(self):
        return next(iter(self.weights)).value.device

    def _map_batches(self, function, arrays, batch_size, progress=None):
        """``function`` of the rows of ``arrays`` (numpy, moved to the device) batch by batch, under no_grad and
        with the averaged weights; its outputs (tensors, or tuples of them) as numpy, concatenated."""
        import torch

        batch_size = check_positive_int(batch_size, "batch_size")
        device = self.compute_device()
        if device.type == "cpu":
            batch_size = min(batch_size, CPU_BATCH_LIMIT)
        parts = []
        with torch.no_grad(), self.averaged_weights():
            for start in range(0, len(arrays[0]), batch_size):
                batch = [torch.as_tensor(array[start:start + batch_size], device=device) for array in arrays]
                parts.append(_tree_to_numpy(function(*batch)))
                if progress is not None:
                    progress(min(start + batch_size, len(arrays[0])), len(arrays[0]))
        return _concatenate(parts)

    def _require_fitted(self):
        if not self.is_fitted:
            raise ValueError("This generator has not been trained yet: call fit(incident_energies, showers) first.")

    def sample(self, incident_energies, batch_size=10_000, seed=None, progress=None, **options):
        """Generate one shower per incident energy.

        Args:
            incident_energies: (N,) or (N, 1) MeV.
            batch_size: showers per network batch (at most `CPU_BATCH_LIMIT` on a CPU).
            seed: int for reproducible showers (None: fresh randomness).
            progress: optional ``callback(done, total)`` called after each batch (a progress bar).
            **options: the family's sampling options (``sampling_options_class``; e.g. ``solver``, ``steps``).
        Returns:
            showers (N, n_voxels) float32 MeV, >= 0, zero below ``threshold_mev``.
        """
        incident_energies = check_incident_energies(incident_energies)
        features = self._sample_features(incident_energies, batch_size, seed, progress, options, stacklevel=3)
        return self.postprocess(features, incident_energies)

    def sample_features(self, incident_energies, batch_size=10_000, seed=None, progress=None, **options):
        """What ``sample`` generates before the representation is undone: features (N, n_features), or for
        point clouds (points (N, max_hits, 4), mask); the same seed gives what ``sample`` voxelises. Its time
        against ``sample``'s is the cost of going back to voxels (``caloedu bench generator`` reports both)."""
        incident_energies = check_incident_energies(incident_energies)
        return self._sample_features(incident_energies, batch_size, seed, progress, options, stacklevel=3)

    def _sample_features(self, incident_energies, batch_size, seed, progress, options, stacklevel):
        self._require_fitted()
        options = self.sampling_options_class.create(f"{self.family}'s sample", **options).as_dict()
        outside = self.energies_outside_training(incident_energies)
        if outside:
            warnings.warn(outside, stacklevel=stacklevel)
        rng = np.random.default_rng(seed)
        return self._map_batches(lambda condition: self.generate(condition, rng, **options),
                                 [self.condition(incident_energies)], batch_size, progress)

    def log_prob(self, incident_energies, showers, batch_size=10_000, seed=0, **options):
        """log p(shower | E_inc) in nats per shower, a density in MeV^n_voxels of the dequantised shower (the
        definition is in the module docstring). (N,) float64; ``seed`` draws the dequantisation; ``options``
        go to the family's ``feature_log_prob`` (a VAE's number of importance samples)."""
        if not self.has_likelihood():
            raise ValueError(f"{self.family} has no likelihood: it learns to sample, not a density. Flows and "
                             "autoregressive models have one, VAEs a bound.")
        if not self.representation.has_density:
            raise ValueError(f"log_prob needs a representation with a density in MeV space, and "
                             f"'{self.options.preprocessing}' has redundant features; train with preprocessing "
                             f"{density_recipes_sentence()}.")
        self._require_fitted()
        incident_energies = check_incident_energies(incident_energies)
        showers = check_showers(showers, self.geometry, len(incident_energies))
        dequantized = dequantize(showers, self.representation.threshold_mev, np.random.default_rng(seed))
        x = self.representation.forward(incident_energies, dequantized)
        if self.likelihood_is_bound:  # a Monte Carlo bound draws its samples from the seed too
            options = {**options, "rng": np.random.default_rng([seed, 1])}
        log_p = self._map_batches(lambda features, condition: self.feature_log_prob(features, condition, **options),
                                  [x, self.condition(incident_energies)], batch_size)
        return log_p.astype(np.float64) + self.representation.log_det_jacobian(incident_energies, dequantized)

    # --- serialization --------------------------------------------------------------------------------
    def get_config(self):
        config = {key: value for key, value in super().get_config().items() if key in _KERAS_ARGUMENTS}
        return {**config, "geometry": self.geometry.get_config(), **self.options.as_dict(),
                "preprocessing_state": self.representation.get_state(),
                "trained_energy_range": None if self.trained_energy_range is None else list(self.trained_energy_range)}
