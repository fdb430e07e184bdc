"""The VAE (caloedu.generators.variational, caloedu.generators.vae): the Gaussian KL in closed form is its Monte
Carlo estimate; the reparameterised sample carries the gradient; on a linear Gaussian model, where log p(x) is
known exactly, the ELBO and the IWAE bound lie below it and the IWAE bound closes the gap as k grows; a trained
VAE's held-out bound grows with k; the 'shares' decoder's layers sum to one; warm-up and free bits act."""

import math

import caloedu  # noqa: F401  (before keras: selects the torch backend)
import numpy as np
import pytest
import torch

from caloedu.data import CalorimeterGeometry, simulate_showers
from caloedu.generators.vae import VAEGenerator
from caloedu.generators.variational import (
    diagonal_normal_log_prob,
    gaussian_kl,
    importance_weighted_bound,
    negative_elbo,
    reparameterize,
)

GEOMETRY = CalorimeterGeometry.preset("teaching")


@pytest.fixture(scope="module")
def showers():
    return simulate_showers(GEOMETRY, 600, seed=11)


@pytest.fixture(scope="module")
def trained(showers):
    vae = VAEGenerator(GEOMETRY, decoder="gaussian", seed=0, latent_dim=4, units=32, n_blocks=1, kl_warmup_steps=10,
                       ema_momentum=None)
    vae.fit(*showers, epochs=3, batch_size=64, verbose=0)
    return vae


def test_gaussian_kl_in_closed_form_is_its_monte_carlo_estimate():
    rng = np.random.default_rng(0)
    mean = torch.tensor([[0.3, -1.2, 2.0]], dtype=torch.float64)
    log_var = torch.tensor([[-0.5, 0.7, -2.0]], dtype=torch.float64)
    z = reparameterize(mean, log_var, torch.as_tensor(rng.standard_normal((400_000, 3))))
    # KL(q || p) = E_q[log q(z) - log p(z)], per dimension
    samples = diagonal_normal_log_prob(z, mean, log_var) - diagonal_normal_log_prob(z, 0.0, 0.0)
    estimate, error = samples.mean(0).numpy(), samples.std(0).numpy() / math.sqrt(len(samples))
    closed = gaussian_kl(mean, log_var).numpy()[0]
    np.testing.assert_array_less(np.abs(estimate - closed), 5 * error)
    assert closed[1] > 0 and np.all(closed > 0)
    np.testing.assert_allclose(gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3)).numpy(), 0.0)


def test_the_reparameterised_sample_has_the_posteriors_moments_and_its_gradient():
    mean = torch.tensor([1.5], requires_grad=True)
    log_var = torch.tensor([math.log(0.25)], requires_grad=True)
    noise = torch.as_tensor(np.random.default_rng(1).standard_normal((200_000, 1)), dtype=torch.float32)
    z = reparameterize(mean, log_var, noise)
    assert abs(float(z.detach().mean()) - 1.5) < 0.01 and abs(float(z.detach().std()) - 0.5) < 0.01  # sigma = exp(log_var / 2)
    z.sum().backward()
    assert float(mean.grad) == pytest.approx(len(noise))
    assert float(log_var.grad) == pytest.approx(float((0.5 * 0.5 * noise).sum()), rel=1e-4)


def linear_gaussian_bounds(k, seed):
    """x = W z + b + N(0, s^2) with z ~ N(0, 1): the exact log p(x), and the ELBO / IWAE bound with a
    deliberately imperfect posterior q(z | x) (the exact posterior's mean, twice its variance: wide enough
    for importance sampling to converge)."""
    rng = np.random.default_rng(seed)
    W = torch.tensor([[1.0, 0.5], [-0.3, 0.8], [0.2, -1.0]], dtype=torch.float64)
    b, s2 = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64), 0.3
    x = torch.as_tensor(rng.standard_normal((50, 3)), dtype=torch.float64)
    covariance = W @ W.T + s2 * torch.eye(3, dtype=torch.float64)
    exact = torch.distributions.MultivariateNormal(b, covariance).log_prob(x)
    precision = torch.eye(2, dtype=torch.float64) + W.T @ W / s2
    posterior_covariance = torch.linalg.inv(precision)
    mean = (x - b) @ W @ posterior_covariance / s2
    log_var = torch.log(torch.diagonal(posterior_covariance)).expand_as(mean) + math.log(2.0)
    log_joint = []
    for _ in range(k):
        z = reparameterize(mean, log_var, torch.as_tensor(rng.standard_normal(mean.shape)))
        reconstruction = diagonal_normal_log_prob(x, z @ W.T + b, math.log(s2)).sum(-1)
        log_joint.append(reconstruction + diagonal_normal_log_prob(z, 0.0, 0.0).sum(-1)
                         - diagonal_normal_log_prob(z, mean, log_var).sum(-1))
    return exact, torch.stack(log_joint)


def test_on_a_linear_gaussian_model_the_bounds_lie_below_log_p_and_iwae_closes_the_gap():
    exact, log_weights = linear_gaussian_bounds(k=2000, seed=2)
    elbo = log_weights.mean(0)  # the ELBO, estimated with the same draws
    iwae = importance_weighted_bound(log_weights)
    assert torch.all(iwae >= elbo)  # Jensen, draw by draw
    assert float((exact - elbo).mean()) > 0.05  # the posterior is imperfect: the ELBO has a gap
    # 2000 importance samples recover log p(x)
    assert float((exact - iwae).abs().mean()) < 0.01 and float((exact - iwae).abs().max()) < 0.05

    def gap(k):
        exact, log_weights = linear_gaussian_bounds(k, seed=3)
        return float((exact - importance_weighted_bound(log_weights)).mean())

    gaps = [gap(k) for k in (1, 8, 64)]
    assert gaps[0] > gaps[1] > gaps[2] > -0.01, gaps


def test_negative_elbo_sums_over_dimensions_and_weighs_the_kl_by_beta():
    reconstruction = torch.tensor([-10.0, -20.0])
    kl = torch.tensor([2.0, 4.0])
    assert float(negative_elbo(reconstruction, kl)) == pytest.approx(18.0)
    assert float(negative_elbo(reconstruction, kl, beta=0.5)) == pytest.approx(16.5)


def test_a_trained_vaes_held_out_bound_grows_with_the_importance_samples(trained, showers):
    energies, held_out = simulate_showers(GEOMETRY, 200, seed=12)
    bounds = [trained.log_prob(energies, held_out, importance_samples=k).mean() for k in (1, 4, 32)]
    assert bounds[0] < bounds[1] < bounds[2], bounds
    np.testing.assert_array_equal(trained.log_prob(energies[:5], held_out[:5], importance_samples=4),
                                  trained.log_prob(energies[:5], held_out[:5], importance_samples=4))
    with pytest.raises(ValueError, match="importance_samples must be at least 1"):
        trained.log_prob(energies, held_out, importance_samples=0)


def test_the_kl_is_not_collapsed_and_the_trackers_show_both_terms(trained, showers):
    kl = trained.latent_kl(*showers)
    assert kl.shape == (4,) and (kl > 0.01).sum() >= 2, kl
    history = trained.history.history
    assert {"loss", "reconstruction", "kl"} <= set(history)
    # after the warm-up the loss is the negative ELBO: reconstruction + KL
    np.testing.assert_allclose(history["loss"][-1], history["reconstruction"][-1] + history["kl"][-1], rtol=1e-4)


def test_kl_warm_up_and_free_bits():
    vae = VAEGenerator(GEOMETRY, seed=0, kl_warmup_steps=100, beta=2.0, **{
        k: v for k, v in VAEGenerator.smoke_options.items() if k != "kl_warmup_steps"})
    assert float(vae.kl_weight()) == pytest.approx(0.02)
    vae.training_steps.assign(500)
    assert float(vae.kl_weight()) == pytest.approx(2.0)
    free = VAEGenerator(GEOMETRY, seed=0, free_bits=50.0, kl_warmup_steps=0, **{
        k: v for k, v in VAEGenerator.smoke_options.items() if k != "kl_warmup_steps"})
    energies, raw = simulate_showers(GEOMETRY, 32, seed=1)
    x, condition = free.preprocess(energies, raw)
    with torch.no_grad():
        losses = free.compute_losses(torch.as_tensor(x), torch.as_tensor(condition))
    # every dimension lies below the floor of 50 nats: the KL term is the floor, whatever the posterior
    assert float(losses["loss"]) == pytest.approx(float(losses["reconstruction"]) + 50.0 * 4, rel=1e-5)


def test_the_shares_decoder_gives_each_layer_shares_that_sum_to_one(showers):
    vae = VAEGenerator(GEOMETRY, seed=0, **VAEGenerator.smoke_options)  # the default decoder
    vae.fit(*showers, epochs=1, batch_size=128, verbose=0)
    assert vae.options.preprocessing == "energy-shares"
    features = vae.sample_features(showers[0][:8], seed=0, spots_per_gev=None)
    shares = features[:, GEOMETRY.n_layers:] * vae.share_std.numpy() + vae.share_mean.numpy()
    np.testing.assert_allclose(GEOMETRY.layer_energies(shares), 1.0, rtol=1e-4)
    # a draw of the decoder: a multinomial of share_weight draws per layer, so shares are multiples of 1 / draws
    draws = vae.options.share_weight
    np.testing.assert_allclose(shares * draws, np.round(shares * draws), atol=1e-3)
    means = vae.sample_features(showers[0][:8], seed=0, decoder_noise=False)
    mean_shares = means[:, GEOMETRY.n_layers:] * vae.share_std.numpy() + vae.share_mean.numpy()
    assert np.all(mean_shares > 0) and (shares == 0).mean() > 0.2  # a softmax is never 0; a draw leaves voxels empty
    generated = vae.sample(showers[0][:8], seed=0)
    assert generated.shape == (8, GEOMETRY.n_voxels) and np.all(generated >= 0)
    # by default the draws are energy spots, spots_per_gev per GeV of the layer: more hits at higher energy
    low, high = vae.sample(np.full(200, 2e3), seed=1), vae.sample(np.full(200, 5e5), seed=1)
    assert (low > 0).mean() < 0.5 * (high > 0).mean()
    fixed = vae.sample(np.full(200, 2e3), seed=1, spots_per_gev=None)
    assert (low > 0).mean() < (fixed > 0).mean()  # 100 draws in a 2 GeV shower's layers: too many hits
    with pytest.raises(ValueError, match="decoder='gaussian'"):
        vae.log_prob(*showers)


def test_options_refuse_a_decoder_on_the_wrong_representation():
    with pytest.raises(ValueError, match="'energy-shares' representation"):
        VAEGenerator(GEOMETRY, decoder="shares", preprocessing="inn-gap")
    with pytest.raises(ValueError, match="kl_warmup_steps must be >= 0"):
        VAEGenerator(GEOMETRY, kl_warmup_steps=-1)


def test_sampling_draws_from_the_decoders_gaussian_unless_told_to_take_its_mean(trained, showers):
    energies = showers[0][:64]
    mean_a = trained.sample_features(energies, seed=0, decoder_noise=False)
    mean_b = trained.sample_features(energies, seed=0, decoder_noise=False)
    noisy = trained.sample_features(energies, seed=0)
    np.testing.assert_array_equal(mean_a, mean_b)
    # the same z (drawn first from the same seed), plus sigma * noise: the residual's spread is the decoder's sigma
    z = np.random.default_rng(0).standard_normal((64, trained.options.latent_dim), dtype=np.float32)
    with torch.no_grad(), trained.averaged_weights():
        mean, log_var, _ = trained.decoder_outputs(torch.as_tensor(z), torch.as_tensor(trained.condition(energies)))
    np.testing.assert_allclose(mean_a, mean.numpy(), rtol=1e-5, atol=1e-5)
    ratio = (noisy - mean_a) / np.exp(0.5 * log_var.numpy())
    assert abs(ratio.std() - 1.0) < 0.05 and abs(ratio.mean()) < 0.05


def test_one_learned_variance_per_feature_is_a_weight_of_the_model(showers):
    vae = VAEGenerator(GEOMETRY, decoder="gaussian", decoder_variance="feature", seed=0, **VAEGenerator.smoke_options)
    vae.fit(*showers, epochs=1, batch_size=128, verbose=0)
    assert tuple(vae.decoder_log_var.shape) == (vae.layout.n_features,)
    assert np.any(vae.decoder_log_var.numpy() != 0.0)  # trained
    assert np.all(np.isfinite(vae.log_prob(*[a[:10] for a in showers])))
