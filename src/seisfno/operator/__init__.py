"""Fourier neural operators for the 2-D acoustic wave equation.

Models (:class:`FNO2d`, the paper's :class:`FNO3d`) map encoded inputs (velocity, source bump,
coordinates; :mod:`.encoding`) to wavefields; :func:`load_model` gives an :class:`OperatorModel`
whose ``predict(velocity_mps, sources_xz_m)`` works in physical units and is differentiable in the
velocity. :func:`train` / :func:`fit` train and checkpoint, :func:`evaluate` measures errors.
"""

from .checkpoint import FORMAT_VERSION, OperatorModel, load_model, make_card, save_model
from .encoding import Normalization, coordinates, encode_inputs, source_bump
from .evaluate import evaluate, plot_comparison
from .fno2d import FNO2d
from .fno3d import FNO3d
from .registry import ARCHITECTURES, build_model, default_args
from .spectral import SpectralConv2d, SpectralConv3d, lowpass, n_params
from .synthetic import synthetic_dataset
from .train import TrainConfig, TrainResult, fit, rel_l2, train

__all__ = [
    "ARCHITECTURES", "FNO2d", "FNO3d", "FORMAT_VERSION", "Normalization", "OperatorModel",
    "SpectralConv2d", "SpectralConv3d", "TrainConfig", "TrainResult", "build_model",
    "coordinates", "default_args", "encode_inputs", "evaluate", "fit", "load_model", "lowpass",
    "make_card", "n_params", "plot_comparison", "rel_l2", "save_model", "source_bump",
    "synthetic_dataset", "train",
]
