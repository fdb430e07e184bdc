"""Conditional variational autoencoder (module 04; Kingma & Welling 2014): an encoder q(z | x, E_inc), a
decoder p(x | z, E_inc) and a prior z ~ N(0, 1), trained on the negative ELBO (`caloedu.generators.variational`).

Training encodes a shower, draws z = mean + sigma * noise (the reparameterisation trick, so the gradient goes
through the draw), decodes it and minimises -log p(x | z, E) + beta KL(q || p(z)). Three trackers show the
terms apart (``loss``, ``reconstruction`` = -log p(x | z, E), ``kl``, each in nats per shower); beta rises
linearly from 0 over ``kl_warmup_steps`` (a KL that weighs fully from the first step pushes every posterior
onto the prior before the decoder can use z: posterior collapse), and ``free_bits`` can keep a floor of nats
per latent dimension. Sampling draws z from the prior and decodes it, one network pass.

Two decoders (``decoder``):

- ``'gaussian'``: a diagonal Gaussian on the features of a representation with a density ('inn-gap' by
  default, the flow's), its mean and log-variance predicted per shower and feature by the network
  (``decoder_variance='feature'``: one learned per feature, a calibrated decoder, Rybkin et al. 2021). Learned
  variances weigh the reconstruction against the KL without a tuned factor. Sampling draws from the Gaussian
  (``decoder_noise``), not just its mean. Its ELBO is a bound on log p(shower | E_inc) in MeV space, so
  ``log_prob`` stands next to the flow's exact likelihood; ``log_prob(..., importance_samples=k)`` gives the
  tighter IWAE bound.
- ``'shares'``: as DNN CaloSim and Geant4's Par04 do, a per-layer softmax over the voxel shares of each
  layer's energy ('energy-shares' representation) and a Gaussian on the u-variables of the layer energies;
  the shares' reconstruction is a cross-entropy counted ``share_weight`` times (a multinomial with that many
  draws), and sampling draws such a multinomial (``decoder_noise``): a voxel with a small share stays empty,
  as in a shower. The number of draws is a sampling option: ``spots_per_gev`` per GeV of the layer's energy, as
  GFLASH deposits a shower in energy spots whose number grows with the energy (a fixed number hits too many
  voxels at low energy and too few at high energy). Shares sum to 1 by construction, but a cross-entropy is
  not a density, so it has no ``log_prob``.

'shares' is the default: after 10 minutes on 2 CPU cores its showers were far harder to tell from simulated
ones than the Gaussian's (README, "Results", has the classifier AUCs); the Gaussian is the one with a
likelihood bound.

The file reads top to bottom: the options, the networks, the generator.
"""

import dataclasses

import keras
import numpy as np
from keras import ops

from caloedu.data.representation import REPRESENTATIONS
from caloedu.generators.base import ShowerGenerator
from caloedu.generators.options import GeneratorOptions, SamplingOptions, option
from caloedu.generators.variational import (
    diagonal_normal_log_prob,
    gaussian_kl,
    importance_weighted_bound,
    negative_elbo,
    reparameterize,
)
from caloedu.layers.mlp import ConditionalResidualMLP

DECODERS = ("gaussian", "shares")
DECODER_VARIANCES = ("feature", "shower")
DECODER_PREPROCESSING = {"gaussian": "inn-gap", "shares": "energy-shares"}
LOG_VAR_RANGE = (-12.0, 6.0)  # bounds on every log-variance: a collapsing variance cannot make the loss -inf
IWAE_REPORT_SAMPLES = 16  # the bench's IWAE bound: 16 posterior draws per shower


@dataclasses.dataclass
class VAEOptions(GeneratorOptions):
    """Options of `VAEGenerator` (``caloedu train --model vae --help``)."""

    decoder: str = option(
        "shares", "p(x | z, E): 'shares' (a softmax over each layer's voxel shares and a Gaussian on the layer "
                  "energies, as DNN CaloSim and Par04; the better showers) or 'gaussian' (a diagonal Gaussian "
                  "on a representation with a density; has log_prob, the ELBO and IWAE bounds)", DECODERS)
    preprocessing: str | None = option(
        None, "how showers become features (None: 'inn-gap' for the gaussian decoder, 'energy-shares' for "
              "shares)", REPRESENTATIONS)
    decoder_variance: str = option(
        "shower", "the Gaussian's variances: predicted per 'shower' and feature by the decoder, or one learned "
                  "per 'feature' (a calibrated decoder, Rybkin et al. 2021)", DECODER_VARIANCES)
    latent_dim: int = option(32, "dimensions of the latent z")
    units: int = option(512, "width of the encoder's and the decoder's residual MLPs")
    n_blocks: int = option(2, "residual blocks of the encoder and of the decoder")
    beta: float = option(1.0, "weight of the KL term after the warm-up (1: the ELBO)")
    kl_warmup_steps: int = option(
        2000, "training steps over which beta rises linearly from 0 (against posterior collapse); 0: none")
    free_bits: float = option(
        0.0, "nats per latent dimension (batch mean) below which the KL is not pushed further down; 0: none")
    share_weight: float = option(
        100.0, "the 'shares' decoder: how many draws the per-layer cross-entropy counts as (its weight "
               "against the KL), and how many a sample draws")
    learning_rate: float = option(1e-3, "Adam's learning rate (cosine-annealed by a TrainingBudget)")
    gradient_clip: float | None = option(5.0, "clip the gradients' global norm to this (None: no clipping)")

    def check(self):
        if self.preprocessing is None:
            self.preprocessing = DECODER_PREPROCESSING[self.decoder]
        super().check()
        for name in ("latent_dim", "units", "n_blocks"):
            if getattr(self, name) < 1:
                raise ValueError(f"Option {name} must be at least 1, got {getattr(self, name)}.")
        for name in ("beta", "free_bits", "kl_warmup_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"Option {name} must be >= 0, got {getattr(self, name)}.")
        if not self.share_weight > 0:
            raise ValueError(f"Option share_weight must be positive, got {self.share_weight}.")
        if self.gradient_clip is not None and not self.gradient_clip > 0:
            raise ValueError(f"gradient_clip must be positive (or None), got {self.gradient_clip}.")
        if self.decoder == "shares" and self.preprocessing != "energy-shares":
            raise ValueError(f"The 'shares' decoder reads each layer's voxel shares back from the 'energy-shares' "
                             f"representation, not from '{self.preprocessing}'; leave preprocessing unset.")
        if self.decoder == "gaussian" and self.preprocessing == "point-cloud":
            raise ValueError("The VAE works on voxel features; choose a voxel recipe, not 'point-cloud'.")


@dataclasses.dataclass
class VAESampling(SamplingOptions):
    """Options of `VAEGenerator.sample` (and ``caloedu sample``)."""

    decoder_noise: bool = option(
        True, "draw x from p(x | z, E), the decoder's mean plus its Gaussian noise (what the ELBO models); "
              "False: its mean, a smooth shower without the voxels' own fluctuations")
    temperature: float = option(1.0, "standard deviation of the prior's z; below 1 trades diversity for typical "
                                     "showers")
    spots_per_gev: float | None = option(
        45.0, "the 'shares' decoder's draw: this many energy spots per GeV of each layer's energy (at least one), "
              "as GFLASH's spot count grows about linearly with the energy; None: share_weight draws at every "
              "energy")

    def check(self):
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}.")
        if self.spots_per_gev is not None and not self.spots_per_gev > 0:
            raise ValueError(f"spots_per_gev must be positive (or None), got {self.spots_per_gev}.")


@keras.saving.register_keras_serializable(package="caloedu")
class VAEGenerator(ShowerGenerator):
    """Conditional VAE on voxel features (the `ShowerGenerator` contract; options in `VAEOptions`).

    Example::

        vae = VAEGenerator(CalorimeterGeometry.preset("teaching"))       # per-layer softmax over voxel shares
        vae.fit(incident_energies, showers, epochs=10, batch_size=256)   # trackers: loss, reconstruction, kl
        showers = vae.sample(incident_energies, seed=0)                   # z from the prior, one decoder pass
        bounded = VAEGenerator(geometry, decoder="gaussian")              # Gaussian decoder on 'inn-gap' features
        bounded.log_prob(incident_energies, showers)                      # the ELBO, nats per shower (MeV space)
        bounded.log_prob(incident_energies, showers, importance_samples=64)   # the IWAE bound, tighter
    """

    options_class = VAEOptions
    sampling_options_class = VAESampling
    loss_names = ("loss", "reconstruction", "kl")
    likelihood_is_bound = True
    likelihood_options = {"decoder": "gaussian"}
    smoke_options = dict(latent_dim=4, units=16, n_blocks=1, kl_warmup_steps=2)

    @property
    def trains_on_dequantized(self):
        # the Gaussian decoder's ELBO bounds the density of dequantised showers (log_prob's definition)
        return self.representation.has_density

    # --- networks ------------------------------------------------------------------------------
    def build_networks(self):
        options, layout = self.options, self.layout
        self.n_gaussian = layout.n_features if options.decoder == "gaussian" else layout.n_scalars
        outputs = (2 if options.decoder_variance == "shower" else 1) * self.n_gaussian
        if options.decoder == "shares":
            outputs += layout.n_voxels
        self.encoder = ConditionalResidualMLP(layout.n_features, 2 * options.latent_dim, options.units,
                                              options.n_blocks, name="encoder")
        self.decoder = ConditionalResidualMLP(options.latent_dim, outputs, options.units, options.n_blocks,
                                              name="decoder")
        self.encoder.build()
        self.decoder.build()
        if options.decoder_variance == "feature":
            self.decoder_log_var = self.add_weight(shape=(self.n_gaussian,), initializer="zeros",
                                                   name="decoder_log_var")
        if options.decoder == "shares":
            # the representation's standardisation of the shares, so the softmax's shares become features
            self.share_mean = self.add_weight(shape=(layout.n_voxels,), initializer="zeros", trainable=False,
                                              name="share_mean")
            self.share_std = self.add_weight(shape=(layout.n_voxels,), initializer="ones", trainable=False,
                                             name="share_std")

    def adapt(self, incident_energies, showers):
        if self.options.decoder == "shares":
            standardizer = self.representation.transform.transforms[-1]
            self.share_mean.assign(standardizer.mean[self.layout.n_scalars:].astype("float32"))
            self.share_std.assign(standardizer.std[self.layout.n_scalars:].astype("float32"))

    def default_optimizers(self):
        return {"optimizer": keras.optimizers.Adam(learning_rate=self.options.learning_rate,
                                                   global_clipnorm=self.options.gradient_clip)}

    def encode(self, x, condition):
        """q(z | x, E): (mean (B, d), log_var (B, d)) from features (B, D) and the condition (B, 1)."""
        mean, log_var = ops.split(self.encoder(x, condition), 2, axis=-1)
        return mean, ops.clip(log_var, *LOG_VAR_RANGE)

    def decoder_outputs(self, z, condition):
        """(mean (B, n_gaussian), log_var (n_gaussian,) or (B, n_gaussian), share logits (B, n_voxels) or
        None) of p(x | z, E)."""
        out = self.decoder(z, condition)
        n = self.n_gaussian
        mean, rest = out[:, :n], out[:, n:]
        if self.options.decoder_variance == "feature":
            log_var = self.decoder_log_var
        else:
            log_var, rest = rest[:, :n], rest[:, n:]
        return mean, ops.clip(log_var, *LOG_VAR_RANGE), (rest if self.options.decoder == "shares" else None)

    def _layer_log_shares(self, logits):
        """log of each layer's softmax over its voxels: logits (B, n_voxels) -> (B, n_voxels)."""
        layout = self.layout
        if layout.is_regular:
            n_layers, n_alpha, n_radial = layout.ring_shape
            per_layer = ops.reshape(logits, (-1, n_layers, n_alpha * n_radial))
            return ops.reshape(ops.log_softmax(per_layer, axis=-1), (-1, layout.n_voxels))
        parts, start = [], 0
        for size in layout.voxels_per_layer:
            if size:
                parts.append(ops.log_softmax(logits[:, start:start + size], axis=-1))
            start += size
        return ops.concatenate(parts, axis=-1)

    def reconstruction_log_prob(self, x, z, condition):
        """log p(x | z, E) per shower (B,) in nats: the Gaussian decoder's density of the features, or for
        'shares' the Gaussian on the u-variables minus ``share_weight`` x the shares' cross-entropy."""
        mean, log_var, logits = self.decoder_outputs(z, condition)
        n = self.n_gaussian
        log_p = ops.sum(diagonal_normal_log_prob(x[:, :n], mean, log_var), axis=-1)
        if logits is None:
            return log_p
        shares = ops.maximum(x[:, n:] * self.share_std + self.share_mean, 0.0)  # the true shares, >= 0
        cross_entropy = -ops.sum(shares * self._layer_log_shares(logits), axis=-1)
        return log_p - self.options.share_weight * cross_entropy

    def decode(self, z, condition, noise=None):
        """Features (B, D) from z (B, d): the decoder's mean (plus sigma * ``noise`` (B, n_gaussian) if given);
        for 'shares' the softmax's shares, standardised as the representation does."""
        mean, log_var, logits = self.decoder_outputs(z, condition)
        gaussian = mean if noise is None else mean + ops.exp(0.5 * log_var) * noise
        if logits is None:
            return gaussian
        shares = ops.exp(self._layer_log_shares(logits))
        return ops.concatenate([gaussian, (shares - self.share_mean) / self.share_std], axis=-1)

    def call(self, inputs, training=None):
        """(x (B, D), condition (B, 1)) -> the reconstruction of x from its posterior mean, (B, D)."""
        x, condition = inputs
        mean, _ = self.encode(x, condition)
        return self.decode(mean, condition)

    # --- training ------------------------------------------------------------------------------
    def kl_weight(self):
        """beta after the warm-up: beta min(1, (steps + 1) / kl_warmup_steps)."""
        if not self.options.kl_warmup_steps:
            return self.options.beta
        steps = ops.cast(self.training_steps, "float32") + 1.0
        return self.options.beta * ops.minimum(1.0, steps / self.options.kl_warmup_steps)

    def compute_losses(self, x, condition):
        """{loss: the negative ELBO (beta-weighted, free bits), reconstruction: -log p(x | z, E), kl:
        KL(q || p(z))}, batch means in nats per shower."""
        mean, log_var = self.encode(x, condition)
        noise = keras.random.normal(ops.shape(mean), seed=self.seed_generator)
        z = reparameterize(mean, log_var, noise)
        reconstruction = self.reconstruction_log_prob(x, z, condition)
        kl_per_dimension = gaussian_kl(mean, log_var)  # (B, d)
        kl = ops.sum(kl_per_dimension, axis=-1)
        if self.options.free_bits:
            # the floor acts on each dimension's batch mean: below it, that dimension's KL is not pushed down
            floored = ops.sum(ops.maximum(ops.mean(kl_per_dimension, axis=0), self.options.free_bits))
            loss = self.kl_weight() * floored - ops.mean(reconstruction)
        else:
            loss = negative_elbo(reconstruction, kl, self.kl_weight())
        return {"loss": loss, "reconstruction": -ops.mean(reconstruction), "kl": ops.mean(kl)}

    # --- likelihood bounds -------------------------------------------------------------------------
    def _require_density_decoder(self):
        if self.options.decoder != "gaussian":
            raise ValueError("The 'shares' decoder's reconstruction is a cross-entropy of voxel shares, not a "
                             "density, so it bounds no likelihood; train with decoder='gaussian' for log_prob.")

    def feature_log_prob(self, x, condition, importance_samples=1, rng=None):
        """A lower bound on log p(x | E) of features x (B, D), (B,) nats: the ELBO (one posterior draw, the KL
        in closed form) for ``importance_samples`` = 1, else the IWAE bound with that many draws."""
        import torch

        self._require_density_decoder()
        rng = np.random.default_rng(0) if rng is None else rng
        mean, log_var = self.encode(x, condition)

        def draw():
            noise = rng.standard_normal(tuple(mean.shape), dtype=np.float32)
            return reparameterize(mean, log_var, torch.as_tensor(noise, device=mean.device))

        if importance_samples == 1:
            return self.reconstruction_log_prob(x, draw(), condition) - ops.sum(gaussian_kl(mean, log_var), axis=-1)
        log_weights = []
        for _ in range(importance_samples):
            z = draw()
            log_weights.append(self.reconstruction_log_prob(x, z, condition)
                               + ops.sum(diagonal_normal_log_prob(z, 0.0, 0.0), axis=-1)
                               - ops.sum(diagonal_normal_log_prob(z, mean, log_var), axis=-1))
        return importance_weighted_bound(ops.stack(log_weights))

    def log_prob(self, incident_energies, showers, batch_size=10_000, seed=0, importance_samples=1):
        """A lower bound on log p(shower | E_inc) in nats per shower (MeV space, dequantised; the contract's
        definition), (N,) float64: the ELBO, or with ``importance_samples`` = k > 1 the IWAE bound, which is
        at least the ELBO on average and grows towards log p with k. ``seed`` draws the dequantisation and the
        posterior samples."""
        importance_samples = int(importance_samples)
        if importance_samples < 1:
            raise ValueError(f"importance_samples must be at least 1, got {importance_samples}.")
        self._require_density_decoder()
        return super().log_prob(incident_energies, showers, batch_size, seed, importance_samples=importance_samples)

    def latent_kl(self, incident_energies, showers, batch_size=10_000):
        """KL(q(z | x, E) || p(z)) per latent dimension, averaged over the showers: (d,) nats. A dimension near
        0 is unused by the decoder (collapsed onto the prior)."""
        self._require_fitted()
        x, condition = self.preprocess(incident_energies, showers)
        kl = self._map_batches(lambda x, c: gaussian_kl(*self.encode(x, c)), [x, condition], batch_size)
        return kl.mean(axis=0).astype(np.float64)

    def quality_report(self, incident_energies, showers):
        kl = self.latent_kl(incident_energies, showers)
        lines = [f"KL per latent dimension on the held-out showers: mean {kl.mean():.2f} nats; "
                 f"{int((kl > 0.01).sum())} of {len(kl)} dimensions above 0.01 nats (not collapsed); "
                 f"total {kl.sum():.1f} nats"]
        if self.options.decoder == "gaussian" and self.representation.has_density:
            elbo = self.log_prob(incident_energies, showers)
            iwae = self.log_prob(incident_energies, showers, importance_samples=IWAE_REPORT_SAMPLES)
            lines.append(f"held-out bounds on log p (dequantised, MeV space): ELBO {elbo.mean():.1f}, IWAE "
                         f"(k = {IWAE_REPORT_SAMPLES}) {iwae.mean():.1f} nats per shower")
        return lines

    # --- sampling ------------------------------------------------------------------------------
    def generate(self, condition, rng, decoder_noise=True, temperature=1.0, spots_per_gev=45.0):
        """Features (B, D): z ~ N(0, temperature^2) drawn from ``rng`` in shower order, decoded (its mean, or a
        draw with ``decoder_noise``)."""
        import torch

        device = condition.device
        z = temperature * rng.standard_normal((len(condition), self.options.latent_dim), dtype=np.float32)
        noise = None
        if decoder_noise:
            noise = torch.as_tensor(rng.standard_normal((len(condition), self.n_gaussian), dtype=np.float32),
                                    device=device)
        features = self.decode(torch.as_tensor(z, device=device), condition, noise)
        if decoder_noise and self.options.decoder == "shares":
            features = features.cpu().numpy()
            if spots_per_gev is None:
                draws = max(1, int(round(self.options.share_weight)))
            else:  # spots in proportion to each layer's energy
                energies = self.energy_condition.inverse(condition.cpu().numpy())
                layers = self.geometry.layer_energies(self.representation.inverse(energies, features))  # (B, L) MeV
                draws = np.maximum(1, np.round(spots_per_gev * layers / 1e3)).astype(np.int64)
            features = torch.as_tensor(self._draw_shares(features, draws, rng), device=device)
        return features

    def _draw_shares(self, features, draws, rng):
        """The 'shares' decoder's draw of p(x | z, E): its cross-entropy is the log-likelihood of a multinomial
        of ``share_weight`` draws over each layer's voxels, so a sample is such a draw (counts / draws): voxels
        the softmax gives little probability stay empty, as in a shower. Features in and out (B, D); ``draws``
        an int, or (B, n_layers) ints (``spots_per_gev``)."""
        n = self.layout.n_scalars
        draws = np.broadcast_to(np.asarray(draws, dtype=np.int64), (len(features), len(self.layout.voxels_per_layer)))
        mean, std = self.share_mean.numpy(), self.share_std.numpy()
        shares = np.clip(features[:, n:].astype(np.float64) * std + mean, 0.0, None)
        start = 0
        for layer, size in enumerate(self.layout.voxels_per_layer):
            if size:
                block = shares[:, start:start + size]
                block /= np.maximum(block.sum(axis=1, keepdims=True), 1e-300)
                shares[:, start:start + size] = rng.multinomial(draws[:, layer], block) / draws[:, layer, None]
            start += size
        features = features.copy()
        features[:, n:] = (shares - mean) / std
        return features

