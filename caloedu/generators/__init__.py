"""Generative models of calorimeter showers, all following one contract (`caloedu.generators.base`):
Keras models conditioned on the incident energy, trained with ``fit(incident_energies, showers)``,
sampled with ``sample(incident_energies) -> showers`` in MeV, saved and resumed as ``.keras`` files."""

from caloedu.generators.base import ShowerGenerator, check_incident_energies, check_showers
from caloedu.generators.callbacks import TimeBudget
from caloedu.generators.flow_matching import FlowMatchingGenerator
from caloedu.generators.ode import SOLVERS, integrate
from caloedu.generators.preprocessing import PREPROCESSINGS, IncidentEnergyRatio, make_preprocessing
from caloedu.generators.velocity import FourierFeatures, LayerTransformerVelocity, MLPVelocity

# Model names the CLI accepts (`caloedu train --model ...`); the other families join here.
GENERATORS = {"flow-matching": FlowMatchingGenerator}

__all__ = [
    "ShowerGenerator", "FlowMatchingGenerator", "GENERATORS", "TimeBudget", "integrate", "SOLVERS",
    "PREPROCESSINGS", "make_preprocessing", "IncidentEnergyRatio", "MLPVelocity", "LayerTransformerVelocity",
    "FourierFeatures", "check_incident_energies", "check_showers",
]
