"""Coupling blocks: the invertible layers of a normalizing flow with a triangular Jacobian (module 05).

A coupling block splits x (B, D) into an untouched half x1 (the first ``n_untouched`` features) and a
transformed half x2. A subnetwork reads x1 and the condition and gives the parameters of an element-wise,
monotone map of x2: affine (RealNVP, Dinh et al. 2017), y2 = x2 exp(s) + t, or a rational-quadratic spline
(`caloedu.layers.splines`). The Jacobian is then block triangular: its determinant is the product of the
element-wise derivatives, log |det J| = sum over x2 of log |dy2/dx2|, O(D) instead of O(D^3). The inverse
needs the same subnetwork output, computed from y1 = x1, so it is exact and costs one pass too.

Between blocks a fixed permutation (`permute`) moves other features into the untouched half; `ActNorm` is a
learned per-feature scale and shift. `CouplingFlow` stacks them; `TwoStageFlow` chains two, CaloFlow's way: the
layer energies first, then the voxels given them. Every layer's ``call(x, condition, inverse=False)`` returns
(y (B, D), log_det (B,)): the log |det| of the direction applied, so a flow adds them up either way.

The functions (``affine_forward``, ``affine_inverse``, ``standard_normal_log_prob``, ``permute``,
``inverse_permutation``, ``conditional_coupling_forward``) are what the exercise of module 05 asks for, with
the same names and signatures; the layers use them.
"""

import math

import keras
import numpy as np
from keras import ops

from caloedu.layers.conditioning import fourier_features
from caloedu.layers.splines import rational_quadratic_spline, spline_parameter_count

COUPLINGS = ("spline", "affine")


def affine_forward(x2, log_scale, shift):
    """y2 = x2 exp(log_scale) + shift, and log |det dy2/dx2| = sum of log_scale: ((B, D2), (B,)).
    Arrays or tensors in (numpy arrays become tensors), tensors out."""
    x2, log_scale, shift = (ops.convert_to_tensor(v) for v in (x2, log_scale, shift))
    return x2 * ops.exp(log_scale) + shift, ops.sum(log_scale, axis=-1)


def affine_inverse(y2, log_scale, shift):
    """x2 = (y2 - shift) exp(-log_scale), and log |det dx2/dy2| = -sum of log_scale: ((B, D2), (B,))."""
    y2, log_scale, shift = (ops.convert_to_tensor(v) for v in (y2, log_scale, shift))
    return (y2 - shift) * ops.exp(-log_scale), -ops.sum(log_scale, axis=-1)


def standard_normal_log_prob(z):
    """log N(z; 0, 1) of each row (B, D) -> (B,): -|z|^2 / 2 - (D / 2) log(2 pi), in nats."""
    dimension = ops.shape(z)[-1]
    return -0.5 * ops.sum(z * z, axis=-1) - 0.5 * dimension * math.log(2.0 * math.pi)


def permute(x, permutation):
    """Features of x (B, D) in the order ``permutation`` (D,) gives: y[:, i] = x[:, permutation[i]]."""
    return ops.take(x, ops.convert_to_tensor(permutation, dtype="int32"), axis=-1)


def inverse_permutation(permutation):
    """The permutation that undoes ``permutation``: permute(permute(x, p), inverse_permutation(p)) == x."""
    permutation = np.asarray(permutation)
    inverse = np.empty_like(permutation)
    inverse[permutation] = np.arange(len(permutation))
    return inverse


def conditional_coupling_forward(x, condition, subnet, n_untouched):
    """One conditional affine coupling block: x1 = x[:, :n_untouched] passes unchanged, and
    (log_scale, shift) = split(subnet(concatenate(x1, condition))) transform x2 = x[:, n_untouched:].

    Args:
        x: (B, D).  condition: (B, C).  subnet: a callable (B, n_untouched + C) -> (B, 2 (D - n_untouched)),
            log-scales first.  n_untouched: features passed unchanged.
    Returns:
        (y (B, D), log_det (B,)).
    """
    x, condition = ops.convert_to_tensor(x), ops.convert_to_tensor(condition)
    x1, x2 = x[:, :n_untouched], x[:, n_untouched:]
    parameters = subnet(ops.concatenate([x1, condition], axis=-1))
    log_scale, shift = ops.split(parameters, 2, axis=-1)
    y2, log_det = affine_forward(x2, log_scale, shift)
    return ops.concatenate([x1, y2], axis=-1), log_det


@keras.saving.register_keras_serializable(package="caloedu")
class CouplingSubnet(keras.layers.Layer):
    """The MLP of a coupling block: (x1 (B, D1), condition (B, 1)) -> (B, outputs).

    The condition (log E_inc mapped to [0, 1]) enters as Fourier features; the last layer starts at zero, so a
    new block is the identity and a deep flow starts where its data are (standardised features).
    """

    def __init__(self, outputs, units=256, n_layers=3, n_frequencies=2, condition_width=1, **kwargs):
        super().__init__(**kwargs)
        self.outputs, self.units, self.n_layers = int(outputs), int(units), int(n_layers)
        self.n_frequencies, self.condition_width = int(n_frequencies), int(condition_width)
        self.hidden = [keras.layers.Dense(self.units, activation="silu", name=f"hidden_{i}")
                       for i in range(self.n_layers)]
        self.out = keras.layers.Dense(self.outputs, kernel_initializer="zeros", name="out")

    def build(self, x1_shape, condition_shape=None):
        width = x1_shape[-1] + self.condition_width + 2 * self.n_frequencies
        for layer in self.hidden:
            layer.build((None, width))
            width = self.units
        self.out.build((None, width))

    def call(self, x1, condition):
        parts = [x1, fourier_features(condition[:, :1], self.n_frequencies)]
        if self.condition_width > 1:  # further conditions (a two-stage flow's layer energies) enter as they are
            parts.append(condition[:, 1:])
        h = ops.concatenate(parts, axis=-1)
        for layer in self.hidden:
            h = layer(h)
        return self.out(h)

    def get_config(self):
        return {**super().get_config(), "outputs": self.outputs, "units": self.units, "n_layers": self.n_layers,
                "n_frequencies": self.n_frequencies, "condition_width": self.condition_width}


@keras.saving.register_keras_serializable(package="caloedu")
class CouplingBlock(keras.layers.Layer):
    """A conditional coupling block on (B, n_features): the first ``n_features // 2`` features pass unchanged,
    the others go through an affine map or a rational-quadratic spline whose parameters the subnetwork gives.

    Args:
        n_features: D.  coupling: "spline" or "affine".
        units, n_layers, n_frequencies: the subnetwork (`CouplingSubnet`).
        n_bins, bound: the spline's bins and interval [-bound, bound] (identity outside).
        clamp: the affine log-scale is soft-clamped to (-clamp, clamp) by clamp tanh(s / clamp) (FrEIA's
            soft clamping), so one step cannot scale a feature by more than exp(clamp).
    """

    def __init__(self, n_features, coupling="spline", units=256, n_layers=3, n_frequencies=2, n_bins=8,
                 bound=5.0, clamp=2.0, condition_width=1, **kwargs):
        super().__init__(**kwargs)
        if coupling not in COUPLINGS:
            raise ValueError(f"Unknown coupling {coupling!r}; choose one of {', '.join(COUPLINGS)}.")
        if n_features < 2:
            raise ValueError(f"A coupling block needs at least 2 features to split, got {n_features}.")
        self.n_features, self.coupling = int(n_features), coupling
        self.units, self.n_layers, self.n_frequencies = int(units), int(n_layers), int(n_frequencies)
        self.n_bins, self.bound, self.clamp = int(n_bins), float(bound), float(clamp)
        self.condition_width = int(condition_width)
        self.n_untouched = self.n_features // 2
        self.n_transformed = self.n_features - self.n_untouched
        per_feature = spline_parameter_count(self.n_bins) if coupling == "spline" else 2
        self.subnet = CouplingSubnet(self.n_transformed * per_feature, self.units, self.n_layers,
                                     self.n_frequencies, self.condition_width, name="subnet")

    def build(self, x_shape=None, condition_shape=None):
        self.subnet.build((None, self.n_untouched), (None, self.condition_width))

    def call(self, x, condition, inverse=False):
        x1, x2 = x[:, :self.n_untouched], x[:, self.n_untouched:]
        parameters = self.subnet(x1, condition)
        if self.coupling == "affine":
            raw_log_scale, shift = ops.split(parameters, 2, axis=-1)
            log_scale = self.clamp * ops.tanh(raw_log_scale / self.clamp)
            y2, log_det = (affine_inverse if inverse else affine_forward)(x2, log_scale, shift)
        else:
            parameters = ops.reshape(parameters, (-1, self.n_transformed, spline_parameter_count(self.n_bins)))
            y2, log_derivatives = rational_quadratic_spline(x2, parameters, self.bound, inverse=inverse)
            log_det = ops.sum(log_derivatives, axis=-1)
        return ops.concatenate([x1, y2], axis=-1), log_det

    def get_config(self):
        return {**super().get_config(), "n_features": self.n_features, "coupling": self.coupling,
                "units": self.units, "n_layers": self.n_layers, "n_frequencies": self.n_frequencies,
                "n_bins": self.n_bins, "bound": self.bound, "clamp": self.clamp,
                "condition_width": self.condition_width}


@keras.saving.register_keras_serializable(package="caloedu")
class FixedPermutation(keras.layers.Layer):
    """A fixed random permutation of the features, drawn from ``seed`` (so a saved flow rebuilds it); with
    fewer than 4 features, the reversed order (so the two halves swap). log |det| = 0."""

    def __init__(self, n_features, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.n_features, self.seed = int(n_features), int(seed)
        if self.n_features < 4:  # a random order of so few features may leave both halves as they were
            self.permutation = np.arange(self.n_features)[::-1].copy()
        else:
            self.permutation = np.random.default_rng(self.seed).permutation(self.n_features)
        self.inverse_of = inverse_permutation(self.permutation)

    def build(self, x_shape=None, condition_shape=None):
        pass  # no weights

    def call(self, x, condition=None, inverse=False):
        y = permute(x, self.inverse_of if inverse else self.permutation)
        return y, ops.zeros_like(y[:, 0])

    def get_config(self):
        return {**super().get_config(), "n_features": self.n_features, "seed": self.seed}


@keras.saving.register_keras_serializable(package="caloedu")
class ActNorm(keras.layers.Layer):
    """A learned per-feature scale and shift, y = x exp(log_scale) + shift (Glow's ActNorm), starting at
    the identity (caloedu's representations standardise the features already); log |det| = sum of log_scale."""

    def __init__(self, n_features, **kwargs):
        super().__init__(**kwargs)
        self.n_features = int(n_features)

    def build(self, x_shape=None, condition_shape=None):
        self.log_scale = self.add_weight(shape=(self.n_features,), initializer="zeros", name="log_scale")
        self.shift = self.add_weight(shape=(self.n_features,), initializer="zeros", name="shift")

    def call(self, x, condition=None, inverse=False):
        log_scale = ops.broadcast_to(self.log_scale, ops.shape(x))
        return (affine_inverse if inverse else affine_forward)(x, log_scale, self.shift)

    def get_config(self):
        return {**super().get_config(), "n_features": self.n_features}


@keras.saving.register_keras_serializable(package="caloedu")
class CouplingFlow(keras.layers.Layer):
    """A conditional normalizing flow: ActNorm, then ``n_blocks`` times (fixed permutation, coupling block).

    ``call(x, condition)`` maps data features x (B, D) to the latent z and gives log |det dz/dx| (B,);
    ``inverse(z, condition)`` maps latents to data in one pass; ``log_prob(x, condition)`` is
    log N(z; 0, 1) + log |det dz/dx| in nats (B,). The condition is (B, 1), log E_inc mapped to [0, 1].
    Options as `CouplingBlock`'s.
    """

    def __init__(self, n_features, n_blocks=8, coupling="spline", units=256, n_layers=3, n_frequencies=2,
                 n_bins=8, bound=5.0, clamp=2.0, condition_width=1, **kwargs):
        super().__init__(**kwargs)
        self.n_features, self.n_blocks = int(n_features), int(n_blocks)
        self.block_options = dict(coupling=coupling, units=int(units), n_layers=int(n_layers),
                                  n_frequencies=int(n_frequencies), n_bins=int(n_bins), bound=float(bound),
                                  clamp=float(clamp), condition_width=int(condition_width))
        self.steps = [ActNorm(self.n_features, name="actnorm")]
        for i in range(self.n_blocks):
            self.steps.append(FixedPermutation(self.n_features, seed=i, name=f"permutation_{i}"))
            self.steps.append(CouplingBlock(self.n_features, name=f"coupling_{i}", **self.block_options))

    def build(self, x_shape=None, condition_shape=None):
        for step in self.steps:
            step.build((None, self.n_features), (None, self.block_options["condition_width"]))

    def call(self, x, condition):
        log_det = ops.zeros_like(x[:, 0])
        for step in self.steps:
            x, step_log_det = step(x, condition)
            log_det = log_det + step_log_det
        return x, log_det

    def inverse(self, z, condition):
        """Latents (B, D) -> data features (B, D), and log |det dx/dz| (B,)."""
        log_det = ops.zeros_like(z[:, 0])
        for step in reversed(self.steps):
            z, step_log_det = step(z, condition, inverse=True)
            log_det = log_det + step_log_det
        return z, log_det

    def log_prob(self, x, condition):
        z, log_det = self(x, condition)
        return standard_normal_log_prob(z) + log_det

    def get_config(self):
        return {**super().get_config(), "n_features": self.n_features, "n_blocks": self.n_blocks,
                **self.block_options}


@keras.saving.register_keras_serializable(package="caloedu")
class TwoStageFlow(keras.layers.Layer):
    """CaloFlow's two flows as one triangular map (Krause & Shih 2021): the first ``n_scalars`` features (the
    u-variables of the layer energies) go through a small flow conditioned on E_inc, the others (the voxels)
    through a flow conditioned on E_inc and on those scalars. log |det| is the sum of the two flows'.

    Same interface as `CouplingFlow`: ``call(x, condition)`` -> (z, log |det dz/dx|), ``inverse(z, condition)``
    (the scalars first, then the voxels given them), ``log_prob(x, condition)``. ``scalar_options`` and
    ``voxel_options`` are `CouplingFlow`'s arguments for each (``n_blocks``, ``units``, ...).
    """

    def __init__(self, n_features, n_scalars, scalar_options=None, voxel_options=None, **kwargs):
        super().__init__(**kwargs)
        self.n_features, self.n_scalars = int(n_features), int(n_scalars)
        if not 2 <= self.n_scalars <= self.n_features - 2:
            raise ValueError(f"A two-stage flow needs at least 2 scalars and 2 other features, got {self.n_scalars} "
                             f"scalars of {self.n_features} features.")
        self.scalar_options, self.voxel_options = dict(scalar_options or {}), dict(voxel_options or {})
        self.scalar_flow = CouplingFlow(self.n_scalars, name="scalar_flow", **self.scalar_options)
        self.voxel_flow = CouplingFlow(self.n_features - self.n_scalars, condition_width=1 + self.n_scalars,
                                       name="voxel_flow", **self.voxel_options)

    def build(self, x_shape=None, condition_shape=None):
        self.scalar_flow.build()
        self.voxel_flow.build()

    def call(self, x, condition):
        scalars, voxels = x[:, :self.n_scalars], x[:, self.n_scalars:]
        z_scalars, log_det_scalars = self.scalar_flow(scalars, condition)
        z_voxels, log_det_voxels = self.voxel_flow(voxels, ops.concatenate([condition, scalars], axis=-1))
        return ops.concatenate([z_scalars, z_voxels], axis=-1), log_det_scalars + log_det_voxels

    def inverse(self, z, condition):
        scalars, log_det_scalars = self.scalar_flow.inverse(z[:, :self.n_scalars], condition)
        voxels, log_det_voxels = self.voxel_flow.inverse(z[:, self.n_scalars:],
                                                         ops.concatenate([condition, scalars], axis=-1))
        return ops.concatenate([scalars, voxels], axis=-1), log_det_scalars + log_det_voxels

    def log_prob(self, x, condition):
        z, log_det = self(x, condition)
        return standard_normal_log_prob(z) + log_det

    def get_config(self):
        return {**super().get_config(), "n_features": self.n_features, "n_scalars": self.n_scalars,
                "scalar_options": self.scalar_options, "voxel_options": self.voxel_options}
