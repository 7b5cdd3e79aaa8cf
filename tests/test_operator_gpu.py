"""CUDA checks (skipped without a GPU): CPU and GPU agree; the CUDA training path runs."""

import numpy as np
import pytest
import torch

from seisfno.operator import fit, load_model, synthetic_dataset
from seisfno.physics import get_preset

pytestmark = pytest.mark.requires_cuda
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA device", allow_module_level=True)

PRESET = get_preset("quick").replace(n=33, nt_out=10)


@pytest.mark.parametrize("compile_", ["off", "on"])
def test_cuda_training_and_cpu_agreement(tmp_path, compile_):
    v, s, u = synthetic_dataset(PRESET, 64, seed=0)
    r = fit(v, s, u, PRESET, tmp_path, arch="fno2d", epochs=3, n_val=16, batch_size=8,
            device="cuda", compile=compile_, progress=False,
            arch_args={"width": 16, "modes": 8})
    assert np.isfinite(r.val_rel_l2) and r.history[-1]["train_rel_l2"] < 1.0
    cpu, gpu = load_model(tmp_path), load_model(tmp_path, device="cuda")
    with torch.no_grad():
        a = cpu.predict(v[:4], s[:4])
        b = gpu.predict(v[:4], s[:4]).cpu()
    rel = float((a - b).norm() / a.norm())
    assert rel < 1e-4, rel
    vg = torch.as_tensor(v[:2], device="cuda").requires_grad_()
    gpu.predict(vg, s[:2]).square().sum().backward()
    assert torch.isfinite(vg.grad).all()
