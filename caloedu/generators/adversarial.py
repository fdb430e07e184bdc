"""The losses of Wasserstein GANs with a gradient penalty (module 03): shared by the voxel WGAN-GP
(`caloedu.generators.wgan_gp`) and MDMA's point-cloud GAN.

A critic C scores showers; the Wasserstein-1 distance between the real and the generated distributions is
the largest E[C(real)] - E[C(fake)] over 1-Lipschitz critics (Kantorovich-Rubinstein), so

    critic:     L_C = E[C(fake)] - E[C(real)] + lambda E[(||grad_x C(x_hat)||_2 - 1)^2]
    generator:  L_G = -E[C(G(z))]

with x_hat = w x_real + (1 - w) x_fake on straight lines between pairs, w ~ U(0, 1) one per shower
(Gulrajani et al. 2017, "Improved Training of Wasserstein GANs"). The penalty holds the critic's gradient
norm near 1 where it matters, instead of clipping its weights. Two details keras-io's wgan_gp example got
wrong (keras-io #143, #415, #910), and which the exercise of module 03 tests:

- w is drawn uniformly, one per shower (not from a normal, and not one for the whole batch: the penalty
  must see points all along every line);
- the norm is sqrt(sum g^2 + epsilon): the gradient of sqrt at 0 is infinite, so a critic that is flat at
  one interpolate would otherwise turn the whole penalty's gradient into NaN.

MDMA adds two terms to the generator's loss: mean-field (feature) matching, the squared distance between the
batch means of the critic's last features on real and on generated showers (Salimans et al. 2016), and
response matching on E_dep / E_inc (`response_matching_loss`).

Every function takes and returns torch tensors (the torch backend); ``gradient_penalty`` needs torch's
autograd, whose double backward the math attention kernel provides and the fused ones do not
(`caloedu.layers.mean_field.math_attention`).
"""

from keras import ops

PENALTY_EPSILON = 1e-12  # inside the square root of the gradient norm: a finite gradient at g = 0


def wasserstein_critic_loss(real_scores, fake_scores):
    """E[C(fake)] - E[C(real)]: what the critic minimises (without the penalty). Scores (B,) or (B, 1)."""
    return ops.mean(fake_scores) - ops.mean(real_scores)


def wasserstein_generator_loss(fake_scores):
    """-E[C(G(z))]: the generator raises the critic's score of its showers."""
    return -ops.mean(fake_scores)


def interpolate(real, fake, weights):
    """x_hat = w real + (1 - w) fake, one weight per shower: real and fake (B, ...), weights (B,) in [0, 1]."""
    weights = ops.reshape(weights, (-1,) + (1,) * (len(real.shape) - 1))
    return weights * real + (1.0 - weights) * fake


def gradient_penalty(critic, real, fake, weights, epsilon=PENALTY_EPSILON):
    """Gulrajani et al.'s penalty E[(||grad_x C(x_hat)||_2 - 1)^2] at the interpolates `interpolate` makes.

    Args:
        critic: ``critic(x (B, ...)) -> scores (B,) or (B, 1)`` (a point-cloud critic closes over its mask,
            so real and fake must have the same shape and mask: MDMA interpolates only clouds of one size).
        real, fake: (B, ...) showers in the critic's input space; ``fake`` is detached here (the penalty
            trains the critic only).
        weights: (B,) interpolation weights, drawn from U(0, 1) one per shower.
        epsilon: inside the square root of the norm.
    Returns:
        a scalar tensor, differentiable with respect to the critic's weights (the graph of the gradient is
        kept: ``create_graph=True``). Runs with gradients on even under ``torch.no_grad`` (validation).
    """
    import torch

    with torch.enable_grad():
        x_hat = interpolate(real.detach(), fake.detach(), weights).requires_grad_(True)
        scores = critic(x_hat)
        (gradients,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
        norms = torch.sqrt(gradients.flatten(1).square().sum(dim=1) + epsilon)  # per shower, (B,)
        return ((norms - 1.0) ** 2).mean()


def feature_matching_loss(real_features, fake_features):
    """|E[f(real)] - E[f(fake)]|^2 summed over features: the batch means of the critic's features (B, F)
    (MDMA: its last mean field). The real side is detached: it is a target, not something to move."""
    difference = ops.mean(ops.stop_gradient(real_features), axis=0) - ops.mean(fake_features, axis=0)
    return ops.sum(difference * difference)


def response_matching_loss(real_response, fake_response):
    """(mean_real - mean_fake)^2 + (std_real - std_fake)^2 of a response (B,) such as E_dep / E_inc.

    Batch moments, not |eta_real_i - eta_fake_i|^2 shower by shower: a generated shower is not a copy of the
    real one beside it in the batch, and pairing them would pull every response towards the conditional
    mean, a resolution too good."""
    real_response = ops.stop_gradient(real_response)
    mean = ops.mean(real_response) - ops.mean(fake_response)
    # sqrt(var + epsilon): a generator whose responses are all equal gets a finite gradient (as the penalty's norm)
    std = ops.sqrt(ops.var(real_response) + PENALTY_EPSILON) - ops.sqrt(ops.var(fake_response) + PENALTY_EPSILON)
    return mean * mean + std * std
