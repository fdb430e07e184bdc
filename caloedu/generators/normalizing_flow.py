"""Normalizing flow generator (module 05): a conditional coupling flow on CaloINN's variables, trained by
maximum likelihood, sampled in one inverse pass, with an exact ``log_prob``.

A flow is an invertible map f from a shower's features x to a latent z ~ N(0, 1); by the change of variables

    log p(x | E_inc) = log N(f(x); 0, 1) + log |det df/dx|,

and the coupling blocks of `caloedu.layers.coupling` make the log-determinant a sum (a triangular Jacobian).
Training minimises -log p(x | E_inc) over showers; sampling runs x = f^-1(z) once, which is why a flow samples
far faster than flow matching's ODE (one network pass per block instead of one per solver stage and step).

The features are the 'inn-gap' representation by default (`caloedu.data.representation`): CaloINN's
'inn-ratios' (the u-variables of the layer energies, then each layer's normalised voxels without one share,
what the others leave; standardised), with the empty voxels moved a factor e^3 below the threshold and the
logarithm of the shares in place of their logit. One to one, so the flow's likelihood becomes a likelihood of
showers in MeV with the representation's log-Jacobian (`ShowerGenerator.log_prob`). The flow trains on
dequantised showers (each empty voxel E_thr u, u ~ U(0, 1], fresh noise each ``fit``): without that noise every
empty voxel would sit at one value, a spike of infinite density that maximum likelihood chases instead of the
showers. The gap keeps the flow's smooth density between "empty" and "hit" from becoming small spurious hits
(the README's results section has what it changed).

The flow has two stages by default (``scalar_blocks``, CaloFlow's flow I and flow II, arXiv:2106.05285): a small
flow of the 12 u-variables given E_inc, then the voxel flow given E_inc and the u-variables (`TwoStageFlow`).
One triangular map, so the likelihood is still exact; the voxel flow knows each layer's energy instead of
having to learn it back from a random half of the features.
"""

import dataclasses

import keras

from caloedu.data.representation import DENSITY_RECIPES
from caloedu.generators.base import ShowerGenerator
from caloedu.generators.options import GeneratorOptions, SamplingOptions, option
from caloedu.layers.coupling import COUPLINGS, CouplingFlow, TwoStageFlow



@dataclasses.dataclass
class NormalizingFlowOptions(GeneratorOptions):
    """Options of `NormalizingFlowGenerator` (``caloedu train --model normalizing-flow --help``)."""

    preprocessing: str = option(
        "inn-gap", "how showers become features; a flow needs a one-to-one recipe (a density)", DENSITY_RECIPES)
    coupling: str = option(
        "spline", "the coupling blocks' element-wise map: rational-quadratic 'spline' (Durkan et al. 2019, "
                  "CaloINN) or 'affine' (RealNVP)", COUPLINGS)
    n_blocks: int = option(8, "coupling blocks, each after a fixed random permutation (CaloINN: 12)")
    scalar_blocks: int = option(
        4, "CaloFlow's two stages: a flow of this many blocks (64 units) for the u-variables of the layer "
           "energies, then the n_blocks of the voxels conditioned on them; 0 (or a representation without "
           "u-variables): one flow of all features")
    units: int = option(96, "width of each block's subnetwork (CaloINN: 256)")
    subnet_layers: int = option(2, "hidden layers of each block's subnetwork (CaloINN: 4 x 256)")
    n_bins: int = option(6, "spline bins on [-bound, bound] (CaloINN: 10)")
    bound: float = option(5.0, "the spline acts on [-bound, bound] of the standardised features, the identity "
                               "outside (linear tails)")
    clamp: float = option(2.0, "affine coupling: the log-scale is soft-clamped to (-clamp, clamp) per block")
    n_frequencies: int = option(2, "Fourier frequencies of the condition (log E_inc) in every subnetwork")
    learning_rate: float = option(1e-3, "Adam's learning rate (cosine-annealed by a TrainingBudget)")
    gradient_clip: float | None = option(
        5.0, "clip the gradients' global norm to this (None: no clipping); a rare outlier shower can give a "
             "likelihood gradient large enough to throw a flow off")

    def check(self):
        super().check()
        if self.scalar_blocks < 0:
            raise ValueError(f"Option scalar_blocks must be 0 (one flow) or more, got {self.scalar_blocks}.")
        for name in ("n_blocks", "units", "subnet_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"Option {name} must be at least 1, got {getattr(self, name)}.")
        if self.n_bins < 2:
            raise ValueError(f"Option n_bins must be at least 2, got {self.n_bins}.")
        if not self.bound > 0 or not self.clamp > 0:
            raise ValueError(f"Options bound and clamp must be positive, got {self.bound} and {self.clamp}.")
        if not self.threshold_mev > 0:
            raise ValueError("A normalizing flow needs threshold_mev > 0: empty voxels are dequantised below it.")
        if self.gradient_clip is not None and not self.gradient_clip > 0:
            raise ValueError(f"gradient_clip must be positive (or None), got {self.gradient_clip}.")


@dataclasses.dataclass
class NormalizingFlowSampling(SamplingOptions):
    """Options of `NormalizingFlowGenerator.sample` (and ``caloedu sample``)."""

    temperature: float = option(
        1.0, "standard deviation of the latent noise; below 1 trades diversity for typical showers")

    def check(self):
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}.")


@keras.saving.register_keras_serializable(package="caloedu")
class NormalizingFlowGenerator(ShowerGenerator):
    """Conditional normalizing flow (the `ShowerGenerator` contract; options in `NormalizingFlowOptions`).

    Example::

        flow = NormalizingFlowGenerator(CalorimeterGeometry.preset("teaching"))   # spline couplings, CaloINN's variables
        flow.fit(incident_energies, showers, epochs=10, batch_size=256)
        showers = flow.sample(incident_energies, seed=0)                           # (N, 960) MeV, one pass
        flow.log_prob(incident_energies, showers)                                  # (N,) nats per shower
        realnvp = NormalizingFlowGenerator(geometry, coupling="affine")
    """

    options_class = NormalizingFlowOptions
    sampling_options_class = NormalizingFlowSampling
    loss_names = ("nll",)
    trains_on_dequantized = True
    smoke_options = dict(n_blocks=2, scalar_blocks=1, units=16, subnet_layers=1, n_bins=4)

    def build_networks(self):
        options = self.options
        blocks = dict(coupling=options.coupling, n_frequencies=options.n_frequencies, n_bins=options.n_bins,
                      bound=options.bound, clamp=options.clamp)
        voxels = dict(n_blocks=options.n_blocks, units=options.units, n_layers=options.subnet_layers, **blocks)
        if options.scalar_blocks and self.layout.n_scalars >= 2:
            scalars = dict(n_blocks=options.scalar_blocks, units=64, n_layers=2, **blocks)
            self.flow = TwoStageFlow(self.layout.n_features, self.layout.n_scalars, scalars, voxels, name="flow")
        else:
            self.flow = CouplingFlow(self.layout.n_features, name="flow", **voxels)
        self.flow.build()

    def default_optimizers(self):
        return {"optimizer": keras.optimizers.Adam(learning_rate=self.options.learning_rate,
                                                   global_clipnorm=self.options.gradient_clip)}

    def call(self, inputs, training=None):
        """(x (B, D), condition (B, 1)) -> (z (B, D), log |det dz/dx| (B,))."""
        x, condition = inputs
        return self.flow(x, condition)

    def feature_log_prob(self, x, condition):
        """log p(x | condition) of features x (B, D) in nats: log N(z; 0, 1) + log |det dz/dx|, (B,)."""
        return self.flow.log_prob(x, condition)

    def compute_losses(self, x, condition):
        """{"nll": the mean negative log-likelihood of the batch in nats per feature}: per feature, so the
        figure (and the learning rate that suits it) does not scale with the number of voxels."""
        return {"nll": -keras.ops.mean(self.flow.log_prob(x, condition)) / self.layout.n_features}

    def generate(self, condition, rng, temperature=1.0):
        """Features (B, D) from latent noise z ~ N(0, temperature^2) drawn from ``rng`` in shower order, in one
        inverse pass of the flow."""
        import torch

        noise = temperature * rng.standard_normal((len(condition), self.layout.n_features), dtype="float32")
        x, _ = self.flow.inverse(torch.as_tensor(noise, device=condition.device), condition)
        return x
