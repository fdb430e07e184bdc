"""Named optimizers for generators: one per group of weights (a GAN's critic and generator), each with its
own learning rate and state, all saved in the .keras file and restored, so training resumes exactly.

keras.Model knows one optimizer (``self.optimizer``); the first named one is that, the others are attributes
``<name>_optimizer`` (where Keras' saving finds their variables). ``get_compile_config`` /
``compile_from_config`` carry all of them, and each is built on its own weights before the saved state loads.
The update is keras-io's custom_train_step_in_torch pattern: clear the gradients, backward, ``apply`` under
``torch.no_grad``.
"""

import keras


class NamedOptimizers:
    """Mixin of `ShowerGenerator` (before keras.Model in the bases, so its ``compile`` is the one called)."""

    def optimizer_weights(self):
        """{optimizer name: the weights it updates}; one optimizer, "optimizer", for all weights by default."""
        return {"optimizer": self.trainable_weights}

    def default_optimizers(self):
        """{optimizer name: optimizer}: what ``fit`` compiles with when the user did not compile."""
        return {"optimizer": keras.optimizers.Adam(learning_rate=self.options.learning_rate)}

    @property
    def optimizers(self):
        """{name: optimizer} once compiled (the first is also Keras' ``self.optimizer``); {} before."""
        names = getattr(self, "_optimizer_names", ())
        return {name: self.optimizer if i == 0 else getattr(self, f"{name}_optimizer") for i, name in enumerate(names)}

    def compile(self, optimizer=None, **kwargs):
        """Compile with one optimizer, a dict ``{name: optimizer}`` for the names of ``optimizer_weights()``,
        or (None) ``default_optimizers()``. Other keyword arguments go to `keras.Model.compile`."""
        groups = self.optimizer_weights()
        if optimizer is None:
            optimizer = self.default_optimizers()
        if not isinstance(optimizer, dict):
            if len(groups) != 1:
                raise ValueError(f"{self.family} has {len(groups)} optimizers ({', '.join(groups)}): compile it with "
                                 "a dict {name: optimizer}.")
            optimizer = {next(iter(groups)): optimizer}
        optimizer = {name: keras.optimizers.get(value) for name, value in optimizer.items()}
        if set(optimizer) != set(groups):
            raise ValueError(f"{self.family} needs the optimizers {', '.join(groups)}; got {', '.join(optimizer)}.")
        names = tuple(groups)
        super().compile(optimizer=optimizer[names[0]], **kwargs)
        for name in names[1:]:
            setattr(self, f"{name}_optimizer", optimizer[name])
        object.__setattr__(self, "_optimizer_names", names)
        object.__setattr__(self, "_optimizer_groups", groups)
        object.__setattr__(self, "_compile_arguments", kwargs)
        for name in names:  # on its own weights only (Keras' fit would build the first on all of them)
            if not optimizer[name].built:
                optimizer[name].build(groups[name])

    def get_compile_config(self):
        if not self.compiled:
            return {}
        optimizers = {name: keras.optimizers.serialize(o) for name, o in self.optimizers.items()}
        return {"optimizers": optimizers, **self._compile_arguments}

    def compile_from_config(self, config):
        config = dict(config)
        optimizers = {name: keras.optimizers.deserialize(value) for name, value in config.pop("optimizers").items()}
        self.compile(optimizer=optimizers, **config)  # builds them: their variables exist before the state loads

    def optimizer_step(self, loss, name="optimizer"):
        """Backpropagate ``loss`` (a scalar torch tensor) and apply one step of the optimizer ``name`` to its
        weights (keras-io's custom_train_step_in_torch pattern)."""
        import torch

        weights = self._optimizer_groups[name]
        for weight in weights:
            weight.value.grad = None
        loss.backward()
        with torch.no_grad():
            self.optimizers[name].apply([w.value.grad for w in weights], weights)
