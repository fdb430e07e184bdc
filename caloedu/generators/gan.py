"""What the two GAN families share (`WGANGPGenerator`, `MDMAGenerator`): a critic and a generator network, one
optimizer each (Adam without momentum), the turn-taking of their updates, and sampling from the generator only.

A family sets ``self.critic`` and ``self.generator_net`` in ``build_networks`` and provides
``compute_losses(x, condition)`` (the critic's losses on a batch, generated showers detached: the trackers'
``critic_loss``, ``generator_loss``, ``gradient_penalty``, ``wasserstein``) and
``generator_losses(x, condition, critic_losses)`` (the generator's loss on the same batch).
"""

import keras
from keras import ops

from caloedu.generators.adversarial import wasserstein_critic_loss, wasserstein_generator_loss
from caloedu.generators.base import ShowerGenerator


class AdversarialGenerator(ShowerGenerator):
    """Base of the GAN families (see the module docstring); options ``n_critic``, ``critic_learning_rate`` and
    ``generator_learning_rate``."""

    loss_names = ("critic_loss", "generator_loss", "gradient_penalty", "wasserstein")
    # Adam without momentum (beta_1 = 0): momentum lags behind an opponent that keeps moving; seed 001 lists
    # momentum for the generator, the critic or both among what failed for MDMA
    adam_beta_2 = 0.999

    def optimizer_weights(self):
        return {"critic": self.critic.trainable_weights, "generator": self.generator_net.trainable_weights}

    def default_optimizers(self):
        return {name: keras.optimizers.Adam(getattr(self.options, f"{name}_learning_rate"), beta_1=0.0,
                                            beta_2=self.adam_beta_2) for name in ("critic", "generator")}

    def sampler_weights(self):
        return self.generator_net.trainable_weights

    def interpolation_weights(self, batch):
        """The gradient penalty's weights (B,): uniform on [0, 1], one per shower."""
        return keras.random.uniform((batch,), seed=self.seed_generator)

    def critic_losses(self, real_scores, fake_scores, penalty):
        """The trackers' four numbers from the critic's scores (B,) and the penalty: critic_loss (with the
        penalty), generator_loss (-E[C(fake)]), gradient_penalty, wasserstein (E[C(real)] - E[C(fake)])."""
        distance = -wasserstein_critic_loss(real_scores, fake_scores)
        return {"critic_loss": -distance + self.options.penalty_weight * penalty,
                "generator_loss": wasserstein_generator_loss(fake_scores), "gradient_penalty": penalty,
                "wasserstein": distance}

    def generator_losses(self, x, condition, critic_losses):
        raise NotImplementedError(f"{type(self).__name__} must give its generator's loss in generator_losses().")

    def train_batch(self, x, condition):
        """One critic update on the batch; after every ``n_critic``-th, one generator update too."""
        losses = self.compute_losses(x, condition)
        self.optimizer_step(losses["critic_loss"], "critic")
        step = self._host_steps if self._host_steps is not None else int(ops.convert_to_numpy(self.training_steps))
        if (step + 1) % self.options.n_critic == 0:
            self.optimizer_step(self.generator_losses(x, condition, losses), "generator")
        return losses
