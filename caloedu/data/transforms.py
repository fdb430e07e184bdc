"""Invertible transforms, numpy in and out: the building blocks of the preprocessing (CaloINN / CaloDREAM).

Every transform has ``forward(x, incident_energies=None)``, ``inverse(y, incident_energies=None)``,
``fit(x, incident_energies=None)`` (a no-op where nothing is learned) and JSON-serialisable
``get_config`` / ``from_config``, so a generator can store its preprocessing in its .keras file::

    chain = Chain([EnergyRatioTransform(geometry, response_scale=2.0), LogitTransform(), Standardizer()])
    x = chain.fit(showers, incident_energies).forward(showers, incident_energies)   # (N, L + n_voxels)
    showers_again = chain.inverse(x, incident_energies)                               # (N, n_voxels) MeV

A transform that maps R^D one to one onto R^D also gives ``log_det_jacobian(x, incident_energies)``,
log |det d forward / d x| per row, and says so with ``has_log_det = True``: what a likelihood in the
showers' own space (MeV) needs on top of the likelihood of the transformed features.
``LogEnergyCondition`` maps the incident energy itself to [0, 1] (the generator's condition).
Outputs are float64.
"""

import numpy as np
from scipy import special

_REGISTRY = {}


def register_transform(cls):
    """Class decorator: make a `Transform` subclass loadable by `transform_from_config` (by class name),
    so chains that contain it survive a generator's .keras save and load."""
    _REGISTRY[cls.__name__] = cls
    return cls


def transform_from_config(config):
    """Rebuild a transform from ``{"class_name": ..., "config": ...}`` (as `serialize` writes it)."""
    try:
        cls = _REGISTRY[config["class_name"]]
    except KeyError as err:
        raise ValueError(f"Unknown transform {config.get('class_name')!r}; known: {', '.join(_REGISTRY)}.") from err
    return cls.from_config(config["config"])


def serialize(transform):
    """``{"class_name": ..., "config": ...}``, JSON-serialisable."""
    return {"class_name": type(transform).__name__, "config": transform.get_config()}


def safe_divide(numerator, denominator):
    """numerator / denominator, 0 where the denominator is 0 (empty layers, showers without energy)."""
    out = np.zeros(np.broadcast_shapes(np.shape(numerator), np.shape(denominator)))
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def incident_column(incident_energies, who):
    """The incident energies as a float64 column (N, 1); ``who`` names the transform that needs them."""
    if incident_energies is None:
        raise ValueError(f"{who} needs the incident_energies (N, 1) MeV.")
    return np.asarray(incident_energies, dtype=np.float64).reshape(-1, 1)


class Transform:
    """Base class. Subclasses implement ``forward`` and ``inverse``; those that learn statistics, ``fit``;
    bijections of R^D onto R^D, ``log_det_jacobian`` with ``has_log_det = True``."""

    has_log_det = False

    def fit(self, x, incident_energies=None):
        return self

    def forward(self, x, incident_energies=None):
        raise NotImplementedError

    def inverse(self, y, incident_energies=None):
        raise NotImplementedError

    def log_det_jacobian(self, x, incident_energies=None):
        """log |det d forward(x) / d x| for each row of ``x``, shape (N,), float64."""
        raise NotImplementedError(
            f"{type(self).__name__} does not map its inputs one to one onto as many outputs, so its outputs "
            "have no density in the space of its inputs.")

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if not isinstance(v, (list, dict)))
        return f"{type(self).__name__}({args})"


@register_transform
class LogitTransform(Transform):
    """x in [0, 1] -> y = ln(x' / (1 - x')), x' = alpha + (1 - 2 alpha) x; inverse clips back to [0, 1]."""

    has_log_det = True

    def __init__(self, alpha=1e-6):
        if not 0 < alpha < 0.5:
            raise ValueError(f"LogitTransform alpha must be in (0, 0.5), got {alpha}.")
        self.alpha = float(alpha)

    def _squeezed(self, x):
        x = np.asarray(x, dtype=np.float64)
        outside = (x < 0) | (x > 1)
        if outside.any():
            raise ValueError(
                f"LogitTransform needs inputs in [0, 1]; {int(outside.sum())} values lie outside "
                f"(from {x.min():g} to {x.max():g}). Scale them first (EnergyRatioTransform's response_scale)."
            )
        return self.alpha + (1.0 - 2.0 * self.alpha) * x

    def forward(self, x, incident_energies=None):
        x = self._squeezed(x)
        return np.log(x) - np.log1p(-x)

    def inverse(self, y, incident_energies=None):
        # expit, not 1 / (1 + exp(-y)): no overflow on the far tails a generator can produce.
        sigmoid = special.expit(np.asarray(y, dtype=np.float64))
        return np.clip((sigmoid - self.alpha) / (1.0 - 2.0 * self.alpha), 0.0, 1.0)

    def log_det_jacobian(self, x, incident_energies=None):
        # dy/dx = (1 - 2 alpha) / (x' (1 - x')) for every feature
        x = self._squeezed(x)
        per_feature = np.log1p(-2.0 * self.alpha) - np.log(x) - np.log1p(-x)
        return per_feature.reshape(len(x), -1).sum(axis=1)

    def get_config(self):
        return {"alpha": self.alpha}


@register_transform
class LogEnergyCondition(Transform):
    """Incident energy (MeV) -> (ln E - ln e_min) / (ln e_max - ln e_min): [0, 1] over the training range."""

    def __init__(self, e_min=1e3, e_max=1e6):
        if not 0 < e_min < e_max:
            raise ValueError(f"LogEnergyCondition needs 0 < e_min < e_max (MeV), got {e_min}, {e_max}.")
        self.e_min, self.e_max = float(e_min), float(e_max)

    def forward(self, energies, incident_energies=None):
        energies = np.asarray(energies, dtype=np.float64)
        return (np.log(energies) - np.log(self.e_min)) / (np.log(self.e_max) - np.log(self.e_min))

    def inverse(self, y, incident_energies=None):
        y = np.asarray(y, dtype=np.float64)
        return np.exp(np.log(self.e_min) + y * (np.log(self.e_max) - np.log(self.e_min)))

    def get_config(self):
        return {"e_min": self.e_min, "e_max": self.e_max}


@register_transform
class Standardizer(Transform):
    """Per-feature (x - mean) / std, with mean and std fitted on data (constant features keep std = 1)."""

    has_log_det = True

    def __init__(self, mean=None, std=None):
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.std = None if std is None else np.asarray(std, dtype=np.float64)

    def fit(self, x, incident_energies=None):
        x = np.asarray(x, dtype=np.float64)
        self.mean = x.mean(axis=0)
        std = x.std(axis=0)
        self.std = np.where(std > 1e-12 * np.maximum(1.0, np.abs(self.mean)), std, 1.0)
        return self

    def _check_fitted(self):
        if self.mean is None:
            raise ValueError("Standardizer is not fitted: call fit(x) first (or pass mean and std).")

    def forward(self, x, incident_energies=None):
        self._check_fitted()
        return (np.asarray(x, dtype=np.float64) - self.mean) / self.std

    def inverse(self, y, incident_energies=None):
        self._check_fitted()
        return np.asarray(y, dtype=np.float64) * self.std + self.mean

    def log_det_jacobian(self, x, incident_energies=None):
        self._check_fitted()
        return np.full(len(x), -np.sum(np.log(np.broadcast_to(self.std, np.shape(x)[1:]))))

    def get_config(self):
        return {
            "mean": None if self.mean is None else self.mean.tolist(),
            "std": None if self.std is None else self.std.tolist(),
        }


@register_transform
class Chain(Transform):
    """Transforms applied in order by ``forward`` and undone in reverse order by ``inverse``."""

    def __init__(self, transforms):
        self.transforms = [transform_from_config(t) if isinstance(t, dict) else t for t in transforms]

    @property
    def has_log_det(self):
        return all(t.has_log_det for t in self.transforms)

    def fit(self, x, incident_energies=None):
        for transform in self.transforms:  # each fits on what the previous ones produce
            transform.fit(x, incident_energies)
            x = transform.forward(x, incident_energies)
        return self

    def forward(self, x, incident_energies=None):
        for transform in self.transforms:
            x = transform.forward(x, incident_energies)
        return x

    def inverse(self, y, incident_energies=None):
        for transform in reversed(self.transforms):
            y = transform.inverse(y, incident_energies)
        return y

    def log_det_jacobian(self, x, incident_energies=None):
        # The chain rule: the log-determinants of the steps add up, each taken where its input lies.
        total = np.zeros(len(x))
        for transform in self.transforms:
            total += transform.log_det_jacobian(x, incident_energies)
            x = transform.forward(x, incident_energies)
        return total

    def get_config(self):
        return {"transforms": [serialize(t) for t in self.transforms]}

    def __repr__(self):
        return f"Chain([{', '.join(map(repr, self.transforms))}])"
