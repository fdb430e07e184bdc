"""Conditional flow matching (Lipman et al. 2023; CaloDREAM, arXiv:2405.09629) for calorimeter showers.

Straight paths between a preprocessed shower x_0 and Gaussian noise eps ~ N(0, 1):
    x_t = (1 - t) x_0 + t eps,   t ~ U(0, 1),   target velocity dx_t/dt = eps - x_0.
The network v(x_t, t, E_inc) is trained with the CFM loss < |v(x_t, t, E_inc) - (eps - x_0)|^2 > (`cfm_loss`),
or (``prediction='data'``) predicts the shower itself, x_0_hat, trained with < |x_0_hat - x_0|^2 >
(`cfm_data_loss`); since x_t - t (eps - x_0) = x_0, its velocity is v = (x_t - x_0_hat) / t. The two have
the same optimum. Sampling integrates dx/dt = v from t = 1 (noise) to t = 0 (data) with a fixed-step ODE
solver (`caloedu.generators.ode.integrate`), the whole batch at once; the base class undoes the
preprocessing and applies the readout threshold.

The file reads top to bottom: the losses, the options, the generator (networks, losses, sampling).
"""

import dataclasses

import keras
import numpy as np
from keras import ops

from caloedu.generators.base import ShowerGenerator
from caloedu.generators.ode import SOLVERS, check_solver, integrate
from caloedu.generators.options import GeneratorOptions, SamplingOptions, option
from caloedu.generators.velocity import LayerTransformerVelocity, MLPVelocity, RingMeanFieldVelocity

ARCHITECTURES = ("auto", "mlp", "transformer", "mean-field")
PREDICTIONS = ("velocity", "data")
DEFAULT_UNITS = {"mlp": 512, "transformer": 128, "mean-field": 64}


def _interpolate(x0, eps, t):
    """x_t = (1 - t) x0 + t eps with t (B,) or (B, 1) made a column: one time per sample."""
    t = ops.reshape(ops.convert_to_tensor(t, dtype="float32"), (-1, 1))  # (B, 1)
    x0 = ops.convert_to_tensor(x0, dtype="float32")
    eps = ops.convert_to_tensor(eps, dtype="float32")
    return (1.0 - t) * x0 + t * eps, t, x0, eps


def _mean(squared_error, feature_weights):
    if feature_weights is not None:
        squared_error = squared_error * ops.convert_to_tensor(feature_weights, dtype="float32")
    return ops.mean(squared_error)  # over samples and features


def cfm_loss(velocity, x0, eps, t, feature_weights=None):
    """The conditional flow matching loss: mean of |velocity(x_t, t) - (eps - x0)|^2 at x_t = (1 - t) x0 + t eps.

    Args:
        velocity: ``velocity(x_t (B, D), t (B, 1)) -> (B, D)``.
        x0: data (B, D); eps: noise (B, D); t: times (B,) or (B, 1).
        feature_weights: optional (D,) weights of the features in the mean (mean 1 keeps the scale).
    Returns:
        a scalar tensor (the mean over samples and features).
    """
    x_t, t, x0, eps = _interpolate(x0, eps, t)
    return _mean(ops.square(velocity(x_t, t) - (eps - x0)), feature_weights)  # target: the path's velocity


def cfm_data_loss(denoiser, x0, eps, t, feature_weights=None):
    """The same paths with the network predicting the data: mean of |denoiser(x_t, t) - x0|^2."""
    x_t, t, x0, eps = _interpolate(x0, eps, t)
    return _mean(ops.square(denoiser(x_t, t) - x0), feature_weights)


@dataclasses.dataclass
class FlowMatchingOptions(GeneratorOptions):
    """Options of `FlowMatchingGenerator` (and of ``caloedu train --model flow-matching``)."""

    architecture: str = option(
        "auto", "velocity network: 'mlp' (residual MLP over all features), 'transformer' (a token per layer), "
                "'mean-field' (a token per ring of radial voxels, shared weights, mean-field context); 'auto': "
                "mean-field when every layer has the same binning, else mlp", ARCHITECTURES)
    prediction: str = option(
        "data", "what the network outputs: 'velocity' (the textbook CFM) or 'data' (the clean shower x_0_hat, "
                "v = (x_t - x_0_hat) / t); with 'data' an always-empty voxel is one constant to learn, where "
                "the velocity (x_t - x_empty) / t grows without bound near t = 0", PREDICTIONS)
    units: int | None = option(
        None, "width of the network's main representation: the MLP's hidden layer, the transformer's tokens, "
              f"the mean-field ring tokens (None: {DEFAULT_UNITS})")
    n_blocks: int = option(3, "residual, transformer or mean-field blocks")
    n_heads: int = option(4, "attention heads of the transformer")
    ff_units: int = option(256, "feed-forward width of the transformer")
    global_units: int = option(256, "width of the mean-field network's global state")
    embedding_units: int = option(128, "width of the (t, condition) embedding")
    n_frequencies: int = option(6, "Fourier frequencies of the t and condition embedding")
    energy_loss_weight: float = option(
        30.0, "weight of the u-variables (the 'energy-*' preprocessings' first n_layers features) against a "
              "voxel's in the loss; 1 is the textbook loss, and they are 12 of 972 features on the teaching "
              "geometry, so with 1 the network learns the energy response last")
    solver: str | None = option(
        None, "default ODE solver of sample (None: Euler for prediction 'data', whose last step returns the "
              "network's own x_0_hat, where the midpoint rule doubles its errors; midpoint for 'velocity')",
        SOLVERS)
    steps: int | None = option(None, "default ODE steps of sample (None: 32 for Euler, 16 otherwise: 32 network calls)")

    def check(self):
        super().check()
        solver = self.solver or ("euler" if self.prediction == "data" else "midpoint")
        check_solver(solver, 1 if self.steps is None else self.steps)


@dataclasses.dataclass
class FlowMatchingSampling(SamplingOptions):
    """Options of `FlowMatchingGenerator.sample` (and ``caloedu sample``)."""

    solver: str | None = option(None, "ODE solver (None: the generator's)", SOLVERS)
    steps: int | None = option(None, "ODE steps (None: the generator's)")


@keras.saving.register_keras_serializable(package="caloedu")
class FlowMatchingGenerator(ShowerGenerator):
    """Conditional flow matching generator (the `ShowerGenerator` contract; options in `FlowMatchingOptions`).

    Example::

        gen = FlowMatchingGenerator(CalorimeterGeometry.preset("teaching"))       # the recommended setup
        gen.fit(incident_energies, showers, epochs=10, batch_size=256)
        showers = gen.sample(incident_energies, solver="rk4", steps=10, seed=0)   # (N, 960) MeV
        textbook = FlowMatchingGenerator(geometry, architecture="mlp", preprocessing="energy-ratios",
                                         prediction="velocity", energy_loss_weight=1.0)
    """

    options_class = FlowMatchingOptions
    sampling_options_class = FlowMatchingSampling
    smoke_options = dict(architecture="mlp", units=32, n_blocks=1, embedding_units=8, n_frequencies=2, steps=2)

    # --- networks ------------------------------------------------------------------------------
    def build_networks(self):
        options, layout = self.options, self.layout
        self.architecture = options.architecture
        if self.architecture == "auto":
            self.architecture = "mean-field" if layout.is_regular else "mlp"
        if self.architecture != "mlp" and not layout.is_regular:
            raise ValueError(f"The {self.architecture} network needs the same voxels in every layer; geometry "
                             f"'{self.geometry.name}' has layers of different binning. Use architecture='mlp'.")
        self.solver = options.solver or ("euler" if options.prediction == "data" else "midpoint")
        self.steps = options.steps or (32 if self.solver == "euler" else 16)
        units = options.units or DEFAULT_UNITS[self.architecture]
        embedding = dict(embedding_units=options.embedding_units, n_frequencies=options.n_frequencies)
        if self.architecture == "mlp":
            self.velocity = MLPVelocity(layout.n_features, units, options.n_blocks, name="velocity", **embedding)
        elif self.architecture == "mean-field":
            self.velocity = RingMeanFieldVelocity(*layout.ring_shape, layout.n_scalars, units, options.n_blocks,
                                                  options.global_units, name="velocity", **embedding)
        else:
            self.velocity = LayerTransformerVelocity(
                layout.n_layers, layout.voxels_per_layer[0], layout.n_scalars, units, options.n_heads,
                options.ff_units, options.n_blocks, name="velocity", **embedding)
        self.velocity.build()
        self.feature_weights = None  # (D,) loss weights normalised to mean 1; None: all equal
        if layout.n_scalars and options.energy_loss_weight != 1.0:
            weights = np.ones(layout.n_features, np.float32)
            weights[:layout.n_scalars] = options.energy_loss_weight
            self.feature_weights = weights / weights.mean()

    def call(self, inputs, training=None):
        """The network: (x_t (B, D), t (B, 1), condition (B, 1)) -> velocity, or x_0_hat for prediction 'data'."""
        return self.velocity(inputs)

    # --- training ------------------------------------------------------------------------------
    def compute_losses(self, x0, condition):
        """{"loss": the CFM loss on one batch}, with t ~ U(0, 1) and eps ~ N(0, 1) drawn (in that order) from
        the generator's seed generator."""
        t = keras.random.uniform((ops.shape(x0)[0], 1), seed=self.seed_generator)
        eps = keras.random.normal(ops.shape(x0), seed=self.seed_generator)

        def network(x_t, t_column):  # the (velocity or data) network at this batch's condition
            return self.velocity((x_t, t_column, condition))

        loss = cfm_data_loss if self.options.prediction == "data" else cfm_loss
        return {"loss": loss(network, x0, eps, t, self.feature_weights)}

    # --- sampling ------------------------------------------------------------------------------
    def generate(self, condition, rng, solver=None, steps=None):
        """Features (B, n_features) integrated from noise at t = 1 to t = 0.

        Args:
            condition: (B, 1) float32 tensor, log incident energy mapped to [0, 1].
            rng: numpy Generator for the starting noise (drawn in shower order: samples do not depend on
                the batch size).
            solver, steps: the ODE solver and its step count (default: the generator's).
        """
        import torch

        solver = self.solver if solver is None else solver
        steps = self.steps if steps is None else steps
        check_solver(solver, steps)
        noise = rng.standard_normal((len(condition), self.layout.n_features), dtype="float32")
        x = torch.as_tensor(noise, device=condition.device)
        t_column = torch.empty((len(x), 1), device=condition.device)

        def velocity(x_t, t):
            if self.options.prediction == "data":
                t = max(t, 1e-3)  # RK4's last stage sits at t = 0, where (x_t - x_0_hat) / t is 0 / 0
                return (x_t - self.velocity((x_t, t_column.fill_(t), condition))) / t
            return self.velocity((x_t, t_column.fill_(t), condition))  # evaluated at once, so one buffer serves

        return integrate(velocity, x, int(steps), solver)
