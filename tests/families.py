"""Two toy generator families that exist only for the tests: they prove the contract carries what the course's
later families need, and that a family registers without touching any CLI file.

- ``toy-point-cloud-gan``: a GAN on the point-cloud representation with two optimizers (critic and
  generator, each with its own learning rate and state), two tracked losses, a data-dependent state fitted
  on the first ``fit`` (the distribution of the number of hits, as MDMA's multiplicity model), and an EMA
  of the generator's weights only. Deep-sets networks; not a model of showers worth anything.
- ``toy-gaussian``: a diagonal Gaussian in the 'voxel-ratios' features whose mean and width depend on the
  energy: the smallest family with an exact likelihood (``feature_log_prob``), for the ``log_prob`` contract.

conftest.py imports this module, so the registry holds both during the tests.
"""

import dataclasses
import math

import caloedu  # noqa: F401  (before keras: selects the torch backend)
import keras
import numpy as np
from keras import ops

from caloedu.generators.base import ShowerGenerator
from caloedu.generators.options import GeneratorOptions, option
from caloedu.generators.registry import register_generator
from caloedu.layers import FourierFeatures


def _masked_mean(h, mask):
    """(B, H, F) features, (B, H) mask -> (B, F) mean over the hits."""
    weights = ops.cast(mask, h.dtype)[..., None]
    return ops.sum(h * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)


@keras.saving.register_keras_serializable(package="caloedu_tests")
class DeepSet(keras.layers.Layer):
    """Per-point MLP with a mean-field context: (points (B, H, F_in), mask, condition (B, C)) -> (B, H, F_out)
    (``pool=False``) or (B, F_out) (``pool=True``)."""

    def __init__(self, units, outputs, pool=False, **kwargs):
        super().__init__(**kwargs)
        self.units, self.outputs, self.pool = int(units), int(outputs), bool(pool)
        self.point_in = keras.layers.Dense(self.units, activation="silu")
        self.context = keras.layers.Dense(self.units, activation="silu")
        self.out = keras.layers.Dense(self.outputs)

    def build(self, points_shape, mask_shape=None, condition_shape=None):
        self.point_in.build((None, None, points_shape[-1] + condition_shape[-1]))
        self.context.build((None, self.units))
        self.out.build((None, self.units) if self.pool else (None, None, 2 * self.units))

    def call(self, points, mask, condition):
        repeated = ops.repeat(condition[:, None, :], ops.shape(points)[1], axis=1)
        h = self.point_in(ops.concatenate([points, repeated], axis=-1))  # (B, H, units)
        context = self.context(_masked_mean(h, mask))  # (B, units)
        if self.pool:
            return self.out(context)  # (B, outputs)
        joined = ops.concatenate([h, ops.repeat(context[:, None, :], ops.shape(h)[1], axis=1)], axis=-1)
        return self.out(joined) * ops.cast(mask, h.dtype)[..., None]

    def get_config(self):
        return {**super().get_config(), "units": self.units, "outputs": self.outputs, "pool": self.pool}


@dataclasses.dataclass
class ToyGANOptions(GeneratorOptions):
    preprocessing: str = option("point-cloud", "the representation", ("point-cloud",))
    units: int = option(16, "width of the deep sets")
    noise_features: int = option(4, "noise per point")
    critic_learning_rate: float = option(1e-3, "the critic's Adam learning rate")
    generator_learning_rate: float = option(5e-4, "the generator's Adam learning rate")


@keras.saving.register_keras_serializable(package="caloedu_tests")
class ToyPointCloudGAN(ShowerGenerator):
    options_class = ToyGANOptions
    loss_names = ("critic_loss", "generator_loss")
    representation_kinds = ("point-cloud",)
    smoke_options = dict(units=8)

    def build_networks(self):
        units, n_point = self.options.units, self.layout.n_point_features
        self.generator_net = DeepSet(units, n_point, name="generator_net")
        self.generator_net.build((None, None, self.options.noise_features), (None, None), (None, 2))
        self.critic_net = DeepSet(units, 1, pool=True, name="critic_net")
        self.critic_net.build((None, None, n_point), (None, None), (None, 2))
        # p(number of hits), fitted on the first fit (adapt); index n holds the fraction of showers with n hits
        self.hit_distribution = self.add_weight(shape=(self.geometry.n_voxels + 1,), initializer="zeros",
                                                trainable=False, name="hit_distribution")

    def adapt(self, incident_energies, showers):
        counts = np.bincount((np.asarray(showers) > 0).sum(axis=1), minlength=self.geometry.n_voxels + 1)
        self.hit_distribution.assign(counts / counts.sum())

    def optimizer_weights(self):
        return {"critic": self.critic_net.trainable_weights, "generator": self.generator_net.trainable_weights}

    def default_optimizers(self):
        return {"critic": keras.optimizers.Adam(self.options.critic_learning_rate, beta_1=0.5),
                "generator": keras.optimizers.Adam(self.options.generator_learning_rate, beta_1=0.5)}

    def sampler_weights(self):
        return self.generator_net.trainable_weights

    def _condition(self, condition, mask):
        n = ops.sum(ops.cast(mask, "float32"), axis=1, keepdims=True) / float(self.geometry.n_voxels)
        return ops.concatenate([condition, n], axis=-1)  # (B, 2): energy and multiplicity

    def _fake(self, mask, condition):
        noise = keras.random.normal((*ops.shape(mask), self.options.noise_features), seed=self.seed_generator)
        return self.generator_net(noise, mask, self._condition(condition, mask))

    def compute_losses(self, cloud, condition):
        points, mask = cloud
        c = self._condition(condition, mask)
        real, fake = self.critic_net(points, mask, c), self.critic_net(self._fake(mask, condition), mask, c)
        critic = ops.mean(ops.softplus(-real) + ops.softplus(fake))
        return {"critic_loss": critic, "generator_loss": ops.mean(ops.softplus(-fake))}

    def train_batch(self, cloud, condition):
        losses = self.compute_losses(cloud, condition)
        self.optimizer_step(losses["critic_loss"], "critic")
        losses["generator_loss"] = self.compute_losses(cloud, condition)["generator_loss"]
        self.optimizer_step(losses["generator_loss"], "generator")
        return losses

    def generate(self, condition, rng):
        import torch

        probabilities = keras.ops.convert_to_numpy(self.hit_distribution).astype(np.float64)
        n_hits = rng.choice(len(probabilities), size=len(condition), p=probabilities / probabilities.sum())
        mask = torch.as_tensor(np.arange(self.layout.max_hits)[None, :] < n_hits[:, None], device=condition.device)
        noise = torch.as_tensor(rng.standard_normal((len(condition), self.layout.max_hits,
                                                     self.options.noise_features), dtype="float32"),
                                device=condition.device)
        return self.generator_net(noise, mask, self._condition(condition, mask)), mask


@dataclasses.dataclass
class ToyGaussianOptions(GeneratorOptions):
    preprocessing: str = option("voxel-ratios", "the representation (one with a density in MeV space)",
                                ("voxel-ratios", "log-ratios"))
    units: int = option(16, "width of the hidden layer")


@keras.saving.register_keras_serializable(package="caloedu_tests")
class ToyGaussian(ShowerGenerator):
    options_class = ToyGaussianOptions
    smoke_options = dict(units=8)

    def build_networks(self):
        self.fourier = FourierFeatures(3)
        self.hidden = keras.layers.Dense(self.options.units, activation="silu")
        self.out = keras.layers.Dense(2 * self.layout.n_features, kernel_initializer="zeros")
        self.fourier.build((None, 1))
        self.hidden.build((None, 7))
        self.out.build((None, self.options.units))

    def _moments(self, condition):
        mean, log_std = ops.split(self.out(self.hidden(self.fourier(condition))), 2, axis=-1)
        return mean, ops.clip(log_std, -7.0, 3.0)

    def feature_log_prob(self, x, condition):
        mean, log_std = self._moments(condition)
        z = (x - mean) * ops.exp(-log_std)
        return ops.sum(-0.5 * z * z - log_std - 0.5 * math.log(2 * math.pi), axis=-1)  # (B,)

    def compute_losses(self, x, condition):
        return {"loss": -ops.mean(self.feature_log_prob(x, condition)) / self.layout.n_features}

    def generate(self, condition, rng):
        import torch

        mean, log_std = self._moments(condition)
        noise = torch.as_tensor(rng.standard_normal(tuple(mean.shape), dtype="float32"), device=condition.device)
        return mean + ops.exp(log_std) * noise


register_generator("toy-point-cloud-gan", ToyPointCloudGAN)
register_generator("toy-gaussian", ToyGaussian)
