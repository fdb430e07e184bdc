"""MDMA, the mean-field attention GAN on point clouds (module 03; Buss, Kasieczka, Krücker et al.,
"Attention to Mean-Fields for Calorimeter Simulation"; seed 001; code kaechb/MDMA).

A shower is the cloud of its hit voxels, each a point (z, alpha, r, E) (the 'point-cloud' representation:
dequantised cell coordinates, min-max + logit + standardised; Box-Cox energies). About 360 of the teaching
geometry's 960 voxels are hit, and a network that works on the hits alone skips the empty rest.

- **Networks** (`caloedu.layers.mean_field`): a permutation-equivariant generator from noise per hit, and a
  permutation-invariant critic, weight-normalised, whose last mean field is returned for feature matching.
  Both are conditioned on (E_inc, n), the incident energy and the number of hits.
- **Multiplicity**: how many hits a shower has is drawn first, from p(n | E_inc), a histogram of n in bins of
  log E_inc fitted on the first ``fit`` (seed 001: "a separate conditional model for particle multiplicity";
  explicit conditioning on n is what the talk calls crucial). It is a weight of the generator, saved with it.
- **Losses** (`caloedu.generators.adversarial`): WGAN-GP, the penalty at interpolates of clouds of the same
  size (a generated cloud has its real partner's mask) through the math attention kernel (the fused ones have
  no double backward); the generator adds mean-field matching on the critic's last mean field and response
  matching on E_dep / E_inc.
- **Batches** of similar multiplicity (``buckets``), each cut to its largest cloud: the attention costs grow
  with the padded length, not the hits.
- **Back to voxels**: each generated shower is rotated by a random angle in alpha before it is binned
  (``random_rotation``), as MDMA does: the detector is symmetric in alpha, and a generator that prefers some
  angles (the alpha artefact of seed 001) would otherwise imprint them on the voxels. Hits that land in one
  voxel add up, or (``collisions='move'``) keep one hit per voxel, so that n generated hits give n hit
  voxels as in a simulated shower (README, "Results", has what each did).

The file reads top to bottom: the multiplicity model, the batches, the options, the generator.
"""

import dataclasses
import math

import keras
import numpy as np
from keras import ops

from caloedu.data.pointcloud import COLLISIONS
from caloedu.generators.adversarial import (
    feature_matching_loss,
    gradient_penalty,
    response_matching_loss,
    wasserstein_generator_loss,
)
from caloedu.generators.gan import AdversarialGenerator
from caloedu.generators.options import GeneratorOptions, SamplingOptions, option
from caloedu.layers.mean_field import MDMACriticNetwork, MDMAGeneratorNetwork, math_attention


def energy_bins(condition, n_bins):
    """The bin (N,) of each condition (log E_inc mapped to [0, 1]) among ``n_bins`` equal bins."""
    return np.clip((np.asarray(condition).reshape(-1) * n_bins).astype(int), 0, n_bins - 1)


def multiplicity_table(condition, n_hits, n_bins, max_hits):
    """p(n | E_inc) as a table (n_bins, max_hits + 1): row b is the distribution of the number of hits of the
    showers whose condition (log E_inc in [0, 1]) falls in bin b; a bin without showers takes its nearest
    neighbour's row."""
    bins = energy_bins(condition, n_bins)
    table = np.zeros((n_bins, max_hits + 1))
    np.add.at(table, (bins, np.asarray(n_hits, int)), 1.0)
    filled = np.flatnonzero(table.sum(axis=1))
    if not len(filled):
        raise ValueError("Cannot fit the multiplicity model without showers.")
    for b in range(n_bins):
        if b not in filled:
            table[b] = table[filled[np.argmin(np.abs(filled - b))]]
    return table / table.sum(axis=1, keepdims=True)


class MultiplicityBatches(keras.utils.PyDataset):
    """Batches of point clouds of similar size: the showers are split into ``buckets`` quantiles of their
    number of hits, shuffled within each, cut into batches in bucket order, and the batches shuffled; every
    batch is cut to its largest cloud (hits sit first in a cloud, padding after). Quantiles, not a sort: a batch still holds
    a range of energies, so its means (feature and response matching) are not those of one energy."""

    def __init__(self, cloud, condition, batch_size, buckets=8, shuffle=True, seed=None):
        super().__init__()
        self.points, self.mask = cloud
        self.condition, self.batch_size, self.shuffle = condition, int(batch_size), bool(shuffle)
        self.n_hits = self.mask.sum(axis=1)
        edges = np.quantile(self.n_hits, np.linspace(0, 1, buckets + 1)[1:-1])
        self.bucket_of = np.searchsorted(edges, self.n_hits, side="right")
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def on_epoch_end(self):
        # rows in bucket order, shuffled within each bucket, cut into consecutive batches: as many batches as
        # Keras would make (a batch may straddle two neighbouring buckets), then the batches shuffled
        tie_break = self.rng.random(len(self.n_hits)) if self.shuffle else np.arange(len(self.n_hits))
        rows = np.lexsort((tie_break, self.bucket_of))
        batches = [rows[i:i + self.batch_size] for i in range(0, len(rows), self.batch_size)]
        order = self.rng.permutation(len(batches)) if self.shuffle else range(len(batches))
        self.batches = [batches[i] for i in order]

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, index):
        rows = self.batches[index]
        length = max(int(self.n_hits[rows].max()), 1)
        return (self.points[rows, :length], self.mask[rows, :length]), self.condition[rows]


@dataclasses.dataclass
class MDMAOptions(GeneratorOptions):
    """Options of `MDMAGenerator` (``caloedu train --model mdma --help``)."""

    preprocessing: str = option("point-cloud", "the representation: hits as points", ("point-cloud",))
    units: int = option(16, "width of the points and of the mean field in both networks (MDMA: 16; the step "
                            "time grows as its square, about 2.4x from 16 to 32 on a CPU)")
    n_blocks: int = option(3, "mean-field attention blocks of the generator (MDMA: 5)")
    critic_blocks: int = option(3, "mean-field attention blocks of the critic (MDMA: 6)")
    n_heads: int = option(4, "attention heads (a divisor of units)")
    noise_features: int = option(4, "noise numbers per hit")
    noise_skip: bool = option(
        True, "the generator outputs noise + network (the network starting at 0): a new generator emits "
              "standard-normal hits, the standardised real hits' marginals (needs noise_features = 4)")
    n_critic: int = option(1, "critic updates per generator update (MDMA found more than 1 did not help)")
    penalty_weight: float = option(10.0, "lambda, the gradient penalty's weight")
    feature_matching_weight: float = option(
        1.0, "weight of mean-field matching (the critic's last mean field, real against generated) in the "
             "generator's loss; seed 001: it makes the generator converge faster")
    response_weight: float = option(
        10.0, "weight of response matching (batch mean and spread of E_dep / E_inc) in the generator's loss; "
              "with 1 the generated response was 2.6 +- 2.5 after 3 minutes (simulated 0.99 +- 0.08)")
    energy_bins: int = option(20, "bins of log E_inc in the multiplicity model p(n | E_inc)")
    collisions: str = option(
        "sum", "generated hits that land in one voxel: 'sum' adds their energies (MDMA); 'move' keeps one hit "
               "per voxel, as simulated showers have (the others move to the nearest free voxel of their layer; "
               "about 10x the voxelisation time)", COLLISIONS)
    buckets: int = option(8, "multiplicity quantiles that batches are drawn from (1: plain shuffled batches)")
    critic_learning_rate: float = option(1e-3, "the critic's learning rate (Adam without momentum)")
    generator_learning_rate: float = option(1e-3, "the generator's learning rate (Adam without momentum)")

    def check(self):
        super().check()
        for name in ("units", "n_blocks", "critic_blocks", "n_heads", "noise_features", "n_critic", "energy_bins",
                     "buckets"):
            if getattr(self, name) < 1:
                raise ValueError(f"Option {name} must be at least 1, got {getattr(self, name)}.")
        if self.noise_skip and self.noise_features != 4:
            raise ValueError(f"noise_skip needs noise_features = 4 (z, alpha, r, E), got {self.noise_features}.")
        if self.units % self.n_heads:
            raise ValueError(f"units ({self.units}) must be a multiple of n_heads ({self.n_heads}).")
        for name in ("penalty_weight", "feature_matching_weight", "response_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"Option {name} must be >= 0, got {getattr(self, name)}.")


@dataclasses.dataclass
class MDMASampling(SamplingOptions):
    """Options of `MDMAGenerator.sample` (and ``caloedu sample``)."""

    random_rotation: bool = option(
        True, "rotate each generated shower by a random angle in alpha before binning it into voxels (on "
              "geometries whose layers share one angular binning)")


@keras.saving.register_keras_serializable(package="caloedu")
class MDMAGenerator(AdversarialGenerator):
    """MDMA's mean-field attention GAN (the `ShowerGenerator` contract; options in `MDMAOptions`).

    Example::

        mdma = MDMAGenerator(CalorimeterGeometry.preset("teaching"))
        mdma.fit(incident_energies, showers, epochs=10, batch_size=128)
        showers = mdma.sample(incident_energies, seed=0)               # (N, 960) MeV
        points, mask = mdma.sample_features(incident_energies, seed=0)  # the hits, before voxelisation
    """

    options_class = MDMAOptions
    sampling_options_class = MDMASampling
    representation_kinds = ("point-cloud",)
    default_batch_size = 128  # the point clouds are large: more, smaller steps in a time budget
    smoke_options = dict(units=8, n_blocks=1, critic_blocks=1, n_heads=2, energy_bins=4, buckets=2)

    # --- networks ------------------------------------------------------------------------------
    def build_networks(self):
        options = self.options
        shared = dict(point_features=self.layout.n_point_features, units=options.units, num_heads=options.n_heads,
                      condition_width=2)
        self.generator_net = MDMAGeneratorNetwork(n_blocks=options.n_blocks, noise_features=options.noise_features,
                                                  noise_skip=options.noise_skip, name="generator_net", **shared)
        self.critic = MDMACriticNetwork(n_blocks=options.critic_blocks, name="critic", **shared)
        self.generator_net.build()
        self.critic.build()
        # p(n | E_inc) (`multiplicity_table`), fitted on the first fit (adapt)
        self.multiplicity = self.add_weight(shape=(options.energy_bins, self.geometry.n_voxels + 1),
                                            initializer="zeros", trainable=False, name="multiplicity")

    def adapt(self, incident_energies, showers):
        n_hits = (np.asarray(showers) > 0).sum(axis=1)
        self.multiplicity.assign(multiplicity_table(self.condition(incident_energies), n_hits,
                                                    self.options.energy_bins, self.geometry.n_voxels))
        for network in (self.generator_net, self.critic):
            network.multiplicity.assign(max(float(n_hits.mean()), 1.0))

    def inverse_options(self):
        return {"collisions": self.options.collisions}

    def training_batches(self, cloud, condition, batch_size, shuffle):
        seed = None if self.options.seed is None else self.options.seed + 1
        return MultiplicityBatches(cloud, condition, batch_size, self.options.buckets, shuffle, seed)

    # --- the pieces of a step ---------------------------------------------------------------------
    def network_condition(self, condition, mask):
        """(B, 2): the energy condition and the number of hits over the number of voxels."""
        n_hits = ops.sum(ops.cast(mask, "float32"), axis=1, keepdims=True)
        return ops.concatenate([condition, n_hits / float(self.geometry.n_voxels)], axis=-1)

    def _fake(self, mask, condition2):
        noise = keras.random.normal((*ops.shape(mask), self.options.noise_features), seed=self.seed_generator)
        return self.generator_net(noise, mask, condition2)

    def response(self, points, mask, condition):
        """E_dep / E_inc of each cloud (B,), differentiable: the Box-Cox energies summed over the hits."""
        transform = self.representation.transform
        mean, std, lam = float(transform.mean[3]), float(transform.std[3]), transform.boxcox_lambda
        y = points[..., 3] * std + mean
        if abs(lam) < 1e-6:
            energies = ops.exp(ops.minimum(y, 30.0))
        else:  # inv Box-Cox, (lam y + 1)^(1 / lam), with its base kept positive and finite
            energies = ops.power(ops.clip(lam * y + 1.0, 1e-6, 1e6), 1.0 / lam)
        deposited = ops.sum(ops.where(ops.cast(mask, "bool"), energies, ops.zeros_like(energies)), axis=1)
        low, high = (math.log(e) for e in self.options.energy_range)
        incident = ops.exp(low + condition[:, 0] * (high - low))  # MeV, `LogEnergyCondition` inverted
        return deposited / incident

    def compute_losses(self, cloud, condition):
        """The critic's losses on one batch (generated clouds detached), as `WGANGPGenerator`'s, and the
        critic's last mean field of the real clouds (``real_field``, for the generator's feature matching)."""
        import torch

        points, mask = cloud
        condition2 = self.network_condition(condition, mask)
        with torch.no_grad():
            fake = self._fake(mask, condition2)
        real_scores, real_field = self.critic(points, mask, condition2)
        fake_scores, _ = self.critic(fake, mask, condition2)
        weights = self.interpolation_weights(ops.shape(condition)[0])
        with math_attention():  # the penalty differentiates through the attention twice
            penalty = gradient_penalty(lambda x_hat: self.critic(x_hat, mask, condition2)[0], points, fake, weights)
        return {**self.critic_losses(real_scores, fake_scores, penalty), "real_field": ops.stop_gradient(real_field)}

    def generator_losses(self, cloud, condition, critic_losses):
        """-E[C(G(z))] + mean-field matching (against the critic step's ``real_field``) + response matching, on
        clouds with the real ones' masks."""
        real_field = critic_losses["real_field"]
        points, mask = cloud
        condition2 = self.network_condition(condition, mask)
        fake = self._fake(mask, condition2)
        fake_scores, fake_field = self.critic(fake, mask, condition2)
        loss = wasserstein_generator_loss(fake_scores)
        if self.options.feature_matching_weight:
            loss = loss + self.options.feature_matching_weight * feature_matching_loss(real_field, fake_field)
        if self.options.response_weight:
            loss = loss + self.options.response_weight * response_matching_loss(
                self.response(points, mask, condition), self.response(fake, mask, condition))
        return loss

    # --- sampling ------------------------------------------------------------------------------
    def draw_multiplicity(self, condition, rng):
        """Numbers of hits (B,) drawn from p(n | E_inc), one uniform number per shower from ``rng``."""
        return self._multiplicity_from_uniforms(condition, rng.random(len(np.asarray(condition).reshape(-1))))

    def _multiplicity_from_uniforms(self, condition, u):
        """Numbers of hits (B,) at the quantiles ``u`` (B,) of p(n | E_inc) (the table read once per batch)."""
        table = ops.convert_to_numpy(self.multiplicity).astype(np.float64)
        cumulative = np.cumsum(table[energy_bins(condition, len(table))], axis=1)
        return np.minimum((cumulative < u[:, None] * cumulative[:, -1:]).sum(axis=1), self.layout.max_hits)

    def generate(self, condition, rng, random_rotation=True):
        """(points (B, max_hits, 4), mask (B, max_hits)): the number of hits of each shower, then the hits.

        Each shower draws from its own generator seeded from ``rng`` (in shower order), so a shower does not
        depend on the batch size or on the others' numbers of hits."""
        import torch

        device, batch = condition.device, len(condition)
        streams = [np.random.default_rng(s) for s in rng.integers(2**63, size=batch)]
        n_hits = self._multiplicity_from_uniforms(condition.cpu().numpy(), np.array([s.random() for s in streams]))
        length = max(int(n_hits.max()), 1)
        noise = np.zeros((batch, length, self.options.noise_features), np.float32)
        for i, s in enumerate(streams):
            noise[i, :n_hits[i]] = s.standard_normal((n_hits[i], self.options.noise_features), dtype=np.float32)
        mask = torch.as_tensor(np.arange(length)[None, :] < n_hits[:, None], device=device)
        points = self.generator_net(torch.as_tensor(noise, device=device), mask,
                                    self.network_condition(condition, mask))
        if random_rotation and len(set(self.geometry.n_alpha)) == 1:  # one angular binning: a turn is a turn
            angles = torch.as_tensor(np.array([s.random() for s in streams], np.float32), device=device)
            points = self.rotate_alpha(points, angles)
        padded = torch.zeros((batch, self.layout.max_hits, points.shape[-1]), device=device)
        padded[:, :length] = torch.where(mask[..., None], points, torch.zeros_like(points))
        padded_mask = torch.zeros((batch, self.layout.max_hits), dtype=torch.bool, device=device)
        padded_mask[:, :length] = mask
        return padded, padded_mask

    def rotate_alpha(self, points, turns):
        """Rotate every cloud (B, N, 4) in alpha by ``turns`` (B,) of a full circle, in the scaled features."""
        transform = self.representation.transform
        mean, std, alpha = float(transform.mean[1]), float(transform.std[1]), transform.alpha
        squeezed = ops.sigmoid(points[..., 1] * std + mean)  # alpha + (1 - 2 alpha) a, a in [0, 1) of the circle
        a = (squeezed - alpha) / (1.0 - 2.0 * alpha)
        a = ops.clip(ops.mod(a + turns[:, None], 1.0), 0.0, 1.0)
        squeezed = alpha + (1.0 - 2.0 * alpha) * a
        rotated = (ops.log(squeezed) - ops.log1p(-squeezed) - mean) / std
        return ops.concatenate([points[..., :1], rotated[..., None], points[..., 2:]], axis=-1)
