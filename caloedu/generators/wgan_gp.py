"""Conditional Wasserstein GAN with a gradient penalty on voxel showers (module 03; Gulrajani et al. 2017).

A generator G(z, E_inc) turns noise into a shower's features; a critic C(x, E_inc) scores showers. They take
turns: ``n_critic`` critic updates on L_C = E[C(fake)] - E[C(real)] + lambda GP, then one generator update on
L_G = -E[C(G(z))] (+ response matching); the losses are in `caloedu.generators.adversarial`. Two optimizers,
"critic" and "generator" (Adam with beta_1 = 0, beta_2 = 0.9, as in the WGAN-GP paper: momentum lags behind
an opponent that keeps moving), both saved in the .keras file, so training resumes where it stopped.

The features are the 'energy-gap' representation by default (the u-variables of the layer energies, then
the square roots of each layer's voxel shares with a gap between empty and hit voxels): the representation
that took flow matching furthest (README, "Results"). The critic sees the 12 u-variables among 972 features,
so the energy response is easy for it to overlook; ``response_weight`` adds response matching on the first
u-variable (E_dep / E_inc, standardised logit): its batch mean and spread, real against generated.

What the trackers show (``fit``'s progress bar and History): ``critic_loss`` (with the penalty),
``generator_loss`` (-E[C(fake)] at the critic's step), ``gradient_penalty`` and ``wasserstein``
(E[C(real)] - E[C(fake)], the critic's estimate of the distance: it should fall as the generator learns,
and a critic that stops training shows it as a distance that collapses to 0).

The file reads top to bottom: the networks, the options, the generator.
"""

import dataclasses

import keras
import numpy as np
from keras import ops

from caloedu.generators.adversarial import gradient_penalty, response_matching_loss, wasserstein_generator_loss
from caloedu.generators.gan import AdversarialGenerator
from caloedu.generators.options import GeneratorOptions, option
from caloedu.generators.velocity import RingMeanFieldVelocity
from caloedu.layers.conditioning import FourierFeatures
from caloedu.layers.mlp import ConditionalResidualMLP

GENERATOR_ARCHITECTURES = ("auto", "mlp", "mean-field")
DEFAULT_UNITS = {"mlp": 512, "mean-field": 64}


@keras.saving.register_keras_serializable(package="caloedu")
class VoxelGeneratorMLP(ConditionalResidualMLP):
    """(noise (B, latent_dim), condition (B, 1)) -> features (B, n_features): the conditional residual MLP
    of `caloedu.layers.mlp` from noise to a shower's features."""

    def __init__(self, n_features, latent_dim=64, units=512, n_blocks=3, n_frequencies=4, **kwargs):
        super().__init__(latent_dim, n_features, units, n_blocks, n_frequencies, **kwargs)
        self.n_features, self.latent_dim = self.output_dim, self.input_dim

    def get_config(self):
        config = super().get_config()
        config.pop("input_dim"), config.pop("output_dim")
        return {**config, "n_features": self.n_features, "latent_dim": self.latent_dim}


@keras.saving.register_keras_serializable(package="caloedu")
class VoxelCritic(keras.layers.Layer):
    """(features (B, n_features), condition (B, 1)) -> scores (B,): an MLP with leaky ReLUs and no
    normalisation over the batch (a batch norm would make one shower's score depend on the others, which the
    per-shower gradient penalty assumes it does not; Gulrajani et al. use none in the critic)."""

    def __init__(self, n_features, units=512, n_layers=3, n_frequencies=4, **kwargs):
        super().__init__(**kwargs)
        self.n_features, self.units = int(n_features), int(units)
        self.n_layers, self.n_frequencies = int(n_layers), int(n_frequencies)
        self.fourier = FourierFeatures(self.n_frequencies, name="fourier")
        self.hidden = [keras.layers.Dense(self.units, activation=keras.activations.leaky_relu, name=f"hidden{i}")
                       for i in range(self.n_layers)]
        self.out = keras.layers.Dense(1, name="out")

    def build(self, x_shape=None, condition_shape=None):
        self.fourier.build((None, 1))
        width = self.n_features + 1 + 2 * self.n_frequencies
        for layer in self.hidden:
            layer.build((None, width))
            width = self.units
        self.out.build((None, width))

    def call(self, x, condition):
        h = ops.concatenate([x, self.fourier(condition)], axis=-1)
        for layer in self.hidden:
            h = layer(h)
        return self.out(h)[:, 0]

    def get_config(self):
        return {**super().get_config(), "n_features": self.n_features, "units": self.units,
                "n_layers": self.n_layers, "n_frequencies": self.n_frequencies}


@dataclasses.dataclass
class WGANGPOptions(GeneratorOptions):
    """Options of `WGANGPGenerator` (``caloedu train --model wgan-gp --help``)."""

    architecture: str = option(
        "auto", "generator network: 'mlp' (noise vector -> residual MLP) or 'mean-field' (noise per voxel "
                "through flow matching's ring mean-field network, shared weights per ring of radial voxels); "
                "'auto': mean-field when every layer has the same binning, else mlp", GENERATOR_ARCHITECTURES)
    latent_dim: int = option(64, "noise dimension of the MLP generator (the mean-field one draws one per feature)")
    units: int | None = option(
        None, f"width of the generator: the MLP's hidden layer, the mean-field ring tokens (None: {DEFAULT_UNITS})")
    n_blocks: int = option(3, "residual (or mean-field) blocks of the generator")
    critic_units: int = option(512, "width of the critic's hidden layers")
    critic_layers: int = option(3, "hidden layers of the critic")
    n_critic: int = option(5, "critic updates per generator update (WGAN-GP: 5)")
    penalty_weight: float = option(10.0, "lambda, the gradient penalty's weight (WGAN-GP: 10)")
    response_weight: float = option(
        1.0, "weight of response matching (batch mean and spread of the E_dep / E_inc feature) in the generator's "
             "loss; 0 switches it off; needs a representation with u-variables")
    critic_learning_rate: float = option(1e-4, "the critic's Adam learning rate")
    generator_learning_rate: float = option(1e-4, "the generator's Adam learning rate")

    def check(self):
        super().check()
        if self.units is not None and self.units < 1:
            raise ValueError(f"Option units must be at least 1, got {self.units}.")
        for name in ("latent_dim", "n_blocks", "critic_units", "critic_layers", "n_critic"):
            if getattr(self, name) < 1:
                raise ValueError(f"Option {name} must be at least 1, got {getattr(self, name)}.")
        if self.penalty_weight < 0 or self.response_weight < 0:
            raise ValueError(f"penalty_weight and response_weight must be >= 0, got {self.penalty_weight} and "
                             f"{self.response_weight}.")


@keras.saving.register_keras_serializable(package="caloedu")
class WGANGPGenerator(AdversarialGenerator):
    """Conditional WGAN-GP on voxel features (the `ShowerGenerator` contract; options in `WGANGPOptions`).

    Example::

        gan = WGANGPGenerator(CalorimeterGeometry.preset("teaching"))
        gan.fit(incident_energies, showers, epochs=10, batch_size=256)   # 5 critic steps per generator step
        showers = gan.sample(incident_energies, seed=0)                   # (N, 960) MeV, one generator pass
        gan.compile(optimizer={"critic": keras.optimizers.RMSprop(1e-4), "generator": keras.optimizers.RMSprop(1e-4)})
    """

    options_class = WGANGPOptions
    adam_beta_2 = 0.9  # the WGAN-GP paper's
    smoke_options = dict(architecture="mlp", latent_dim=8, units=16, n_blocks=1, critic_units=16, critic_layers=1,
                         n_critic=2)

    # --- networks ------------------------------------------------------------------------------
    def build_networks(self):
        options, layout = self.options, self.layout
        self.architecture = options.architecture
        if self.architecture == "auto":
            self.architecture = "mean-field" if layout.is_regular else "mlp"
        if self.architecture == "mean-field" and not layout.is_regular:
            raise ValueError(f"The mean-field generator needs the same voxels in every layer; geometry "
                             f"'{self.geometry.name}' has layers of different binning. Use architecture='mlp'.")
        if options.response_weight and not layout.n_scalars:
            raise ValueError(f"Response matching reads the E_dep / E_inc feature, which the '{options.preprocessing}'"
                             " representation has not; choose one with u-variables ('energy-gap') or "
                             "response_weight=0.")
        units = options.units or DEFAULT_UNITS[self.architecture]
        if self.architecture == "mlp":
            self.generator_net = VoxelGeneratorMLP(layout.n_features, options.latent_dim, units, options.n_blocks,
                                                   name="generator_net")
        else:
            self.generator_net = RingMeanFieldVelocity(*layout.ring_shape, layout.n_scalars, units, options.n_blocks,
                                                       name="generator_net")
        self.generator_net.build()
        self.critic = VoxelCritic(layout.n_features, options.critic_units, options.critic_layers, name="critic")
        self.critic.build()

    def noise_shape(self, batch):
        return (batch, self.options.latent_dim if self.architecture == "mlp" else self.layout.n_features)

    def generator(self, noise, condition):
        """Features (B, n_features) from noise (B, `noise_shape`[1]) and the condition (B, 1)."""
        if self.architecture == "mlp":
            return self.generator_net(noise, condition)
        return self.generator_net((noise, ops.ones_like(condition), condition))  # t = 1: noise in, shower out

    def call(self, inputs, training=None):
        """(noise, condition (B, 1)) -> generated features (B, n_features)."""
        return self.generator(*inputs)

    # --- training ------------------------------------------------------------------------------
    def _fake(self, condition):
        noise = keras.random.normal(self.noise_shape(ops.shape(condition)[0]), seed=self.seed_generator)
        return self.generator(noise, condition)

    def compute_losses(self, x, condition):
        """The critic's losses on one batch (generated showers detached): {critic_loss (with the penalty),
        generator_loss (-E[C(fake)]), gradient_penalty, wasserstein (E[C(real)] - E[C(fake)])}."""
        import torch

        with torch.no_grad():  # the critic's step: the generator's graph is not needed
            fake = self._fake(condition)
        real_scores, fake_scores = self.critic(x, condition), self.critic(fake, condition)
        weights = self.interpolation_weights(ops.shape(x)[0])
        penalty = gradient_penalty(lambda x_hat: self.critic(x_hat, condition), x, fake, weights)
        return self.critic_losses(real_scores, fake_scores, penalty)

    def generator_losses(self, x, condition, critic_losses=None):
        """The generator's loss on one batch: -E[C(G(z))] plus ``response_weight`` x response matching."""
        fake = self._fake(condition)
        loss = wasserstein_generator_loss(self.critic(fake, condition))
        if self.options.response_weight:
            loss = loss + self.options.response_weight * response_matching_loss(x[:, 0], fake[:, 0])
        return loss

    # --- sampling ------------------------------------------------------------------------------
    def generate(self, condition, rng):
        """Features (B, n_features) from noise drawn in shower order (samples do not depend on the batch size)."""
        import torch

        noise = rng.standard_normal(self.noise_shape(len(condition)), dtype=np.float32)
        return self.generator(torch.as_tensor(noise, device=condition.device), condition)
