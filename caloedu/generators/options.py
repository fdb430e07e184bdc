"""Generator options: one dataclass per family, each field with its default and a sentence of help.

The dataclass is the one place a family's options live (as nanoGPT's ``GPTConfig``): the constructor reads
it (``FlowMatchingGenerator(geometry, n_blocks=4)``), ``get_config`` writes it into the .keras file, and the
command line builds ``caloedu train --model NAME`` options from it, so the library's defaults and the
CLI's are the same thing. The defaults are each family's recommended configuration.

One vocabulary across families: ``units`` the width of a network's main representation, ``n_blocks`` its
number of blocks, ``n_heads`` attention heads, ``*_units`` other widths, ``*_learning_rate`` one per optimizer.
"""

import dataclasses
import types
import typing

from caloedu.data.geometry import DS2_THRESHOLD_MEV
from caloedu.data.representation import REPRESENTATIONS


def option(default, help, choices=None):
    """A dataclass field with a default, one sentence of ``help`` and, for strings, the allowed ``choices``."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices})


def base_type(annotation):
    """(type, nullable) of a field annotation: ``int | None`` -> (int, True); ``tuple[float, float]`` ->
    (tuple, False)."""
    args = typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return base_type(inner[0])[0], True
    return typing.get_origin(annotation) or annotation, False


class Options:
    """Mixin of the option dataclasses: construction from keyword arguments with one clear error per problem."""

    @classmethod
    def create(cls, family, **values):
        """Options from keyword arguments; unknown names and wrong values raise a ValueError naming ``family``."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{family} has no option {', '.join(map(repr, unknown))}; its options are "
                             f"{', '.join(sorted(known))}.")
        return cls(**values)

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            kind, nullable = base_type(field.type)
            if value is None:
                if not nullable:
                    raise ValueError(f"Option {field.name} needs a value ({kind.__name__}), got None.")
                continue
            if kind is tuple:
                value = tuple(float(v) for v in value)  # JSON (a .keras config) gives lists
            elif kind is bool:
                value = bool(value)
            elif kind in (int, float):
                if kind is int and int(value) != value:
                    raise ValueError(f"Option {field.name} must be a whole number, got {value}.")
                value = kind(value)
            choices = field.metadata.get("choices")
            if choices is not None and value not in choices:
                raise ValueError(f"Unknown {field.name} {value!r}; choose one of {', '.join(map(str, choices))}.")
            setattr(self, field.name, value)
        self.check()

    def check(self):
        """Family-specific checks of values (ranges); raise ValueError with a sentence."""

    def as_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass
class GeneratorOptions(Options):
    """The options every generator family has."""

    preprocessing: str = option(
        "energy-gap", "how showers become the network's features (caloedu.data.representation)", REPRESENTATIONS)
    energy_range: tuple[float, float] = option(
        (1e3, 1e6), "(min, max) incident energy in MeV that the condition maps to [0, 1] on a log scale")
    threshold_mev: float = option(
        DS2_THRESHOLD_MEV, "readout threshold in MeV: generated voxels below it are set to 0 (DS2: 15.15 keV)")
    logit_alpha: float = option(1e-6, "the logit's alpha in the preprocessing, x' = alpha + (1 - 2 alpha) x")
    learning_rate: float = option(1e-3, "Adam's learning rate (of every optimizer the family does not set apart)")
    ema_momentum: float | None = option(
        0.999, "keep an exponential moving average of the sampling network's weights and sample with it; "
               "None or 0 switches it off")
    seed: int | None = option(None, "seeds the training noise (and the preprocessing's dequantisation)")

    def check(self):
        low, high = self.energy_range
        if not 0 < low < high:
            raise ValueError(f"energy_range must be (min, max) MeV with 0 < min < max, got {self.energy_range}.")
        if self.threshold_mev < 0:
            raise ValueError(f"threshold_mev must be >= 0 MeV, got {self.threshold_mev}.")
        if not 0 < self.logit_alpha < 0.5:
            raise ValueError(f"logit_alpha must be in (0, 0.5), got {self.logit_alpha}.")
        for field in dataclasses.fields(self):
            if field.name.endswith("learning_rate") and not getattr(self, field.name) > 0:
                raise ValueError(f"{field.name} must be positive, got {getattr(self, field.name)}.")
        if self.ema_momentum == 0:
            self.ema_momentum = None
        if self.ema_momentum is not None and not 0 < self.ema_momentum < 1:
            raise ValueError(f"ema_momentum must be in (0, 1) (or None: no averaging), got {self.ema_momentum}.")


@dataclasses.dataclass
class SamplingOptions(Options):
    """Options of ``sample`` (and ``caloedu sample``); a family that has some subclasses this."""
