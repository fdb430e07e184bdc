"""Generative models of calorimeter showers, all following one contract (`caloedu.generators.base`): Keras
models conditioned on the incident energy, trained with ``fit(incident_energies, showers)``, sampled with
``sample(incident_energies) -> showers`` in MeV, saved and resumed as ``.keras`` files.

Where things are:

    base.py           ShowerGenerator, the contract (its docstring says what a family implements)
    optimizers.py     named optimizers (one per group of weights), saved and restored with the model
    ema.py            the moving average of the weights that sampling uses
    options.py        the options dataclasses: every option with its default and help, one vocabulary
    registry.py       FAMILIES: name -> class, what the CLI, the benches and the tests read
    callbacks.py      TrainingBudget (minutes or showers, cosine schedule), NaNGuard
    flow_matching.py  FlowMatchingGenerator ("flow-matching"), cfm_loss, cfm_data_loss
    velocity.py       the flow-matching networks (MLP, layer transformer, ring mean field)
    ode.py            euler_step, midpoint_step, rk4_step, integrate
    normalizing_flow.py  NormalizingFlowGenerator ("normalizing-flow"): coupling flows (caloedu.layers.coupling)
    adversarial.py    the WGAN-GP losses: critic, generator, gradient penalty, feature and response matching
    gan.py            AdversarialGenerator: what the GANs share (two optimizers, the turns of their updates)
    wgan_gp.py        WGANGPGenerator ("wgan-gp"): a conditional WGAN-GP on voxel features
    mdma.py           MDMAGenerator ("mdma"): the mean-field attention GAN on point clouds (caloedu.layers.mean_field)
    variational.py    the VAE's pieces: reparameterize, gaussian_kl, negative_elbo, importance_weighted_bound
    vae.py            VAEGenerator ("vae"): a conditional VAE, Gaussian or per-layer softmax decoder

A new family is one file here (or one small folder): its options dataclass, its networks
(``build_networks``), its losses (``compute_losses``, or ``train_batch`` with several optimizers), its
``generate`` (and ``feature_log_prob`` if it has a likelihood), registered with one line in
``registry.FAMILIES``. ``caloedu train --model NAME``, ``caloedu sample``, ``caloedu bench generator`` and the
contract tests (tests/test_generators_contract.py) then pick it up; no CLI file changes. Its shared pieces
come from ``caloedu.layers`` and ``caloedu.data.representation``, not from copies.

Names load on first use, so ``import caloedu.generators.registry`` (the CLI) does not import keras.
"""

from caloedu.lazy import lazy_exports

_EXPORTS = {
    "base": ("ShowerGenerator", "CPU_BATCH_LIMIT"),
    "callbacks": ("TrainingBudget", "NaNGuard", "TrainingDiverged"),
    "options": ("GeneratorOptions", "SamplingOptions", "option"),
    "registry": ("FAMILIES", "register_generator", "get_family", "family_names"),
    "flow_matching": ("FlowMatchingGenerator", "FlowMatchingOptions", "cfm_loss", "cfm_data_loss"),
    "velocity": ("MLPVelocity", "LayerTransformerVelocity", "RingMeanFieldVelocity"),
    "normalizing_flow": ("NormalizingFlowGenerator", "NormalizingFlowOptions"),
    "adversarial": ("wasserstein_critic_loss", "wasserstein_generator_loss", "interpolate", "gradient_penalty",
                    "feature_matching_loss", "response_matching_loss"),
    "gan": ("AdversarialGenerator",),
    "wgan_gp": ("WGANGPGenerator", "WGANGPOptions", "VoxelGeneratorMLP", "VoxelCritic"),
    "mdma": ("MDMAGenerator", "MDMAOptions", "multiplicity_table", "MultiplicityBatches"),
    "variational": ("reparameterize", "gaussian_kl", "diagonal_normal_log_prob", "negative_elbo",
                    "importance_weighted_bound"),
    "vae": ("VAEGenerator", "VAEOptions"),
    "ode": ("SOLVERS", "integrate", "euler_step", "midpoint_step", "rk4_step"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
