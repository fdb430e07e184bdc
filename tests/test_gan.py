"""The Wasserstein GAN's losses (caloedu.generators.adversarial) and the voxel WGAN-GP family's own rules.
The contract tests (tests/test_generators_contract.py) cover what every family does: resuming with both
optimizers' states, a NaN that stops training, the CLI."""

import caloedu  # noqa: F401  (before keras: selects the torch backend)
import keras
import numpy as np
import pytest
import torch

from caloedu.data.geometry import CalorimeterGeometry
from caloedu.data.simulation import simulate_showers
from caloedu.generators.adversarial import (
    feature_matching_loss,
    gradient_penalty,
    interpolate,
    response_matching_loss,
    wasserstein_critic_loss,
    wasserstein_generator_loss,
)
from caloedu.generators.wgan_gp import WGANGPGenerator

GEOMETRY = CalorimeterGeometry.preset("teaching")


def test_the_wasserstein_losses_have_the_critic_score_real_showers_higher():
    real, fake = torch.tensor([2.0, 4.0]), torch.tensor([0.0, 1.0])
    assert float(wasserstein_critic_loss(real, fake)) == pytest.approx(0.5 - 3.0)  # E[fake] - E[real] < 0
    assert float(wasserstein_generator_loss(fake)) == pytest.approx(-0.5)


def test_interpolation_is_one_weight_per_shower_on_the_straight_line():
    real, fake = torch.ones(3, 2, 4), torch.zeros(3, 2, 4)
    x_hat = interpolate(real, fake, torch.tensor([0.0, 0.25, 1.0]))
    np.testing.assert_allclose(x_hat.numpy(), np.broadcast_to(np.array([0.0, 0.25, 1.0])[:, None, None], (3, 2, 4)))


def test_the_penalty_of_a_linear_critic_is_its_gradient_norm_minus_one_squared():
    w = torch.tensor([[3.0], [4.0]], requires_grad=True)  # C(x) = x . w, |grad| = 5 everywhere
    real, fake = torch.randn(6, 2), torch.randn(6, 2)
    penalty = gradient_penalty(lambda x: x @ w, real, fake, torch.rand(6))
    assert float(penalty.detach()) == pytest.approx(16.0, rel=1e-6)
    (gradient,) = torch.autograd.grad(penalty, w)  # d/dw (|w| - 1)^2 = 2 (|w| - 1) w / |w|
    np.testing.assert_allclose(gradient.numpy().ravel(), 2 * 4 * np.array([3.0, 4.0]) / 5, rtol=1e-5)


def test_the_penalty_keeps_a_finite_gradient_where_the_critic_is_flat():
    w = torch.zeros(2, 1, requires_grad=True)  # a flat critic: grad_x C = 0, where sqrt has no derivative
    real, fake = torch.randn(4, 2), torch.randn(4, 2)
    (gradient,) = torch.autograd.grad(gradient_penalty(lambda x: x @ w, real, fake, torch.rand(4)), w)
    assert torch.isfinite(gradient).all()
    (bare,) = torch.autograd.grad(gradient_penalty(lambda x: x @ w, real, fake, torch.rand(4), epsilon=0.0), w)
    assert not torch.isfinite(bare).all(), "without the epsilon the norm's gradient at 0 is NaN (keras-io's bug)"


def test_the_penalty_needs_gradients_even_in_validation_and_trains_only_the_critic():
    w = torch.tensor([[1.0], [2.0]], requires_grad=True)
    fake_source = torch.randn(4, 2, requires_grad=True)  # stands for the generator's output
    with torch.no_grad():  # Keras' validation runs the losses like this
        value = gradient_penalty(lambda x: x @ w, torch.randn(4, 2), fake_source, torch.rand(4))
    assert float(value.detach()) == pytest.approx((5 ** 0.5 - 1) ** 2, rel=1e-5)
    penalty = gradient_penalty(lambda x: x @ w, torch.randn(4, 2), fake_source * 2, torch.rand(4))
    penalty.backward()
    assert fake_source.grad is None and w.grad is not None


def test_feature_and_response_matching_compare_batch_moments_and_leave_the_real_side_alone():
    real = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    assert float(feature_matching_loss(real, real[[1, 0]]).detach()) == 0.0  # the same batch in another order
    fake = torch.tensor([[1.0, 2.0], [3.0, 6.0]], requires_grad=True)
    loss = feature_matching_loss(real, fake)  # means (2, 3) against (2, 4)
    assert float(loss.detach()) == pytest.approx(1.0)
    loss.backward()
    assert real.grad is None and fake.grad is not None
    eta = torch.tensor([0.9, 1.0, 1.1])
    assert float(response_matching_loss(eta, eta.flip(0))) == pytest.approx(0.0, abs=1e-12)
    wider = torch.tensor([0.8, 1.0, 1.2])  # the same mean, twice the spread
    assert float(response_matching_loss(eta, wider)) == pytest.approx(np.std(eta.numpy()) ** 2, rel=1e-5)
    assert float(response_matching_loss(eta, eta + 0.1)) == pytest.approx(0.01, rel=1e-4)


@pytest.fixture(scope="module")
def showers():
    energies, showers = simulate_showers(GEOMETRY, 300, seed=3)
    return energies, showers


def test_the_generator_steps_once_every_n_critic_critic_steps(showers):
    keras.utils.set_random_seed(0)
    gan = WGANGPGenerator(GEOMETRY, **{**WGANGPGenerator.smoke_options, "n_critic": 3})
    gan.fit(*showers, epochs=2, batch_size=50, verbose=0)  # 12 batches
    optimizers = gan.optimizers
    assert int(optimizers["critic"].iterations) == 12 and int(optimizers["generator"].iterations) == 4
    assert set(gan.history.history) >= {"critic_loss", "generator_loss", "gradient_penalty", "wasserstein"}


def test_each_optimizer_updates_only_its_own_network(showers):
    keras.utils.set_random_seed(0)
    gan = WGANGPGenerator(GEOMETRY, **{**WGANGPGenerator.smoke_options, "n_critic": 2})
    x, condition = gan.preprocess(*showers)
    gan.compile()
    critic_before = [w.numpy().copy() for w in gan.critic.weights]
    generator_before = [w.numpy().copy() for w in gan.generator_net.weights]
    batch = (torch.as_tensor(x[:50]), torch.as_tensor(condition[:50]))
    gan._host_steps = 0  # the first step: a critic update only
    gan.train_batch(*batch)
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(critic_before, gan.critic.weights))
    assert all(np.array_equal(b, w.numpy()) for b, w in zip(generator_before, gan.generator_net.weights))
    critic_now = [w.numpy().copy() for w in gan.critic.weights]
    gan._host_steps = 1  # the second: the critic, then the generator
    gan.train_batch(*batch)
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(generator_before, gan.generator_net.weights))
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(critic_now, gan.critic.weights))


def test_response_matching_needs_u_variables_and_says_so():
    with pytest.raises(ValueError, match="response_weight=0"):
        WGANGPGenerator(GEOMETRY, preprocessing="voxel-ratios")
    WGANGPGenerator(GEOMETRY, preprocessing="voxel-ratios", response_weight=0, **WGANGPGenerator.smoke_options)


@pytest.mark.parametrize("architecture", ["mlp", "mean-field"])
def test_both_generator_networks_sample_showers(architecture, showers):
    options = {**WGANGPGenerator.smoke_options, "architecture": architecture}
    gan = WGANGPGenerator(GEOMETRY, **options)
    gan.fit(*showers, epochs=1, batch_size=100, verbose=0)
    generated = gan.sample(showers[0][:7], seed=0)
    assert generated.shape == (7, GEOMETRY.n_voxels) and np.isfinite(generated).all()
    # the noise is drawn shower by shower: the batch size changes only float rounding (and so, rarely, a voxel
    # at the threshold: hence an absolute tolerance of a few thresholds)
    np.testing.assert_allclose(generated[:3], gan.sample(showers[0][:3], seed=0, batch_size=2), rtol=1e-3, atol=0.05)


def test_response_matching_keeps_a_finite_gradient_when_the_generated_spread_is_zero():
    fake = torch.full((4,), 1.0, requires_grad=True)
    response_matching_loss(torch.tensor([0.9, 1.0, 1.1, 1.0]), fake).backward()
    assert torch.isfinite(fake.grad).all()
