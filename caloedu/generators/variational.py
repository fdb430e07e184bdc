"""The variational autoencoder's pieces (module 04; Kingma & Welling 2014, Burda et al. 2016), as functions of
tensors so that the lecture, the exercise and `caloedu.generators.vae` use the same ones.

A VAE models p(x | E) = int p(x | z, E) p(z) dz with a latent z ~ N(0, 1). The integral has no closed form,
so an encoder q(z | x, E) = N(mean, exp(log_var)) proposes the z that could have made x, and

    log p(x | E) >= E_q[log p(x | z, E)] - KL(q(z | x, E) || p(z))          (the ELBO)

Training maximises the ELBO (minimises ``negative_elbo``); the first term is the reconstruction, the second
pulls every shower's posterior towards the prior, which is what makes sampling from the prior work.
With k samples z_i ~ q the importance-weighted bound (IWAE) log (1/k) sum_i p(x, z_i) / q(z_i | x) is tighter:
it is the ELBO at k = 1, grows with k and tends to log p(x) (``importance_weighted_bound``).

Shapes: B showers, d latent dimensions, D features; every log-density in nats.
"""

import math

from keras import ops

LOG_2PI = math.log(2.0 * math.pi)


def reparameterize(mean, log_var, noise):
    """A sample of N(mean, exp(log_var)) as a differentiable function of (mean, log_var): mean + sigma * noise,
    sigma = exp(log_var / 2), noise ~ N(0, 1) drawn outside. (B, d) each -> (B, d)."""
    return mean + ops.exp(0.5 * log_var) * noise


def gaussian_kl(mean, log_var):
    """KL(N(mean, exp(log_var)) || N(0, 1)) per latent dimension, in closed form: (B, d) -> (B, d) nats,
    0.5 (mean^2 + exp(log_var) - 1 - log_var). Sum over the last axis for the KL of the whole posterior."""
    return 0.5 * (ops.square(mean) + ops.exp(log_var) - 1.0 - log_var)


def diagonal_normal_log_prob(x, mean, log_var):
    """log N(x; mean, exp(log_var)) element by element (broadcasting), in nats: sum over the features for
    the log-density of a vector."""
    return -0.5 * (LOG_2PI + log_var + ops.square(x - mean) * ops.exp(-log_var))


def negative_elbo(reconstruction_log_prob, kl, beta=1.0):
    """The batch's loss: mean over showers of -(log p(x | z, E) - beta KL), each (B,) summed over the
    features and the latent dimensions (a mean over them would weigh the KL wrongly against the
    reconstruction). beta = 1 is the ELBO; beta < 1 during a warm-up. A scalar in nats per shower."""
    return ops.mean(beta * kl - reconstruction_log_prob)


def importance_weighted_bound(log_weights):
    """The IWAE bound from log w_i = log p(x, z_i) - log q(z_i | x), (k, B) -> (B,):
    log (1/k) sum_i w_i, computed stably (logsumexp). By Jensen it is at least the mean of the log w_i."""
    k = ops.shape(log_weights)[0]
    return ops.logsumexp(log_weights, axis=0) - math.log(k)
