"""CPU speed of the neural operator: FWI iteration and training step, code variants side by side.

Usage::

    python benchmarks/operator_cpu.py [--threads 1 2] [--repeat 5] [--variants ...]

It prints the machine (CPU model, AVX2 / AVX-512 flags, torch's build and the kernel level it
runs: ``ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2``
emulate an AVX2-only CPU on an AVX-512 one: ATen's, MKL's and oneDNN's kernels) and a Markdown
table per thread count:

- ``fwi``: one operator FWI iteration with the shipped ``quick`` model, 20 sources, forward and
  backward to the velocity (what ``seisfno invert --forward fno:quick`` runs each iteration);
- ``train quick bN`` / ``train paper bN``: one training step (forward, backward, AdamW) of the
  ``quick`` (width 32, 16 modes, 50 outputs) and the shipped ``paper`` (width 32, 24 modes,
  100 outputs) architectures at batch N, reported as samples/s. ``legacy`` steps PyTorch's
  default AdamW (single-tensor on CPU), as training did before; the others training's own
  (``make_optimizer``: fused for real weights, multi-tensor for complex ones).

Variants, each a copy of the network with the same weights: ``fftx`` (the CPU default since
2026-12-04: channels-first, real FFTs along x, complex GEMMs with truncated DFT matrices along
z, forward and backward written out), ``matmul-cf`` (the default from issue 12 to 2026-12-03:
channels-first, the kept Fourier modes by truncated DFT matrices, every step a real matmul,
real weights in the channel mix's layout, autograd; still the default on GPU),
``matmul-blocks`` (the same with complex
weights, turned into 2x2 real blocks at every step: the layer of the second pass, commit
da5c18d), ``matmul-pairs`` (``matmul-cf`` without the 2x2 real blocks it keeps while the
weights are frozen, so FWI mixes ``[Re x; Im x]`` by ``[Re w | Im w]`` as training does: the
code of 2026-12-03 morning; training steps are ``matmul-cf``'s), ``fft-cf`` and
``fft-cl`` (FFTs with a real batched matmul for the channel mix, channels-first or
channels-last), and ``legacy`` (the code before issue 12, kept in this file: FFTs, a complex
einsum, channels-last, complex weights). Each case runs every
variant in turn, ``--repeat`` times, and keeps each one's fastest: compare the ratio column,
which is robust to the load of a shared machine. The last column is the median number of page
faults of a timed step (memory the kernel had to map and zero). Like the ``seisfno`` command,
the script keeps freed memory for reuse (:func:`seisfno.keep_freed_memory`, for every variant
alike); run it with ``SEISFNO_MALLOC=system`` to measure glibc's defaults.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import platform
import resource
import time

import torch
from torch import nn

from seisfno import keep_freed_memory
from seisfno.inversion import OperatorForward, default_sources
from seisfno.operator import build_model, load_model
from seisfno.operator.spectral import SpectralConv2d
from seisfno.operator.train import make_optimizer

VARIANTS = {"fftx": ("fftx", False), "matmul-cf": ("matmul", False),
            "matmul-pairs": ("pairs", False),
            "matmul-blocks": ("blocks", False),
            "fft-cf": ("fft", False), "fft-cl": ("fft", True), "legacy": ("legacy", True)}
BASELINE = "legacy"


def _legacy_forward(self, x: torch.Tensor, channels_last: bool = False,
                    add: torch.Tensor | None = None) -> torch.Tensor:
    """``SpectralConv2d.forward`` before issue 12 (commit 858220f), for the baseline."""
    d1, d2 = (1, 2) if channels_last else (-2, -1)
    n1, n2 = x.shape[d1], x.shape[d2]
    m1, m2 = self.modes1, self.modes2
    lo, hi = slice(0, m1), slice(n1 - m1 + 1, n1)
    at = (lambda i, j: (slice(None), i, j)) if channels_last else (lambda i, j: (..., i, j))
    xf = torch.fft.rfft2(x.float(), dim=(d1, d2))
    low = torch.cat([xf[at(lo, slice(0, m2))], xf[at(hi, slice(0, m2))]], dim=d1)
    w = self.weight.to(low.dtype)
    if channels_last:
        y = torch.einsum("bxyi,ioxy->bxyo", low, w)
        out = xf.new_zeros(x.shape[0], n1, n2 // 2 + 1, self.out_channels)
    else:
        y = torch.einsum("bixy,ioxy->boxy", low, w)
        out = xf.new_zeros(x.shape[0], self.out_channels, n1, n2 // 2 + 1)
    out[at(lo, slice(0, m2))] = y[at(slice(0, m1), slice(None))]
    out[at(hi, slice(0, m2))] = y[at(slice(m1, None), slice(None))]
    y = torch.fft.irfft2(out, s=(n1, n2), dim=(d1, d2))
    return y if add is None else y + add  # the caller's `sc(h) + pw(h)` before


def _blocks_weight(weight: torch.Tensor) -> torch.Tensor:
    """The weight as the 2x2 real blocks ``[[wr, wi], [-wi, wr]]`` of ``(k1*k2, 2*cin,
    2*cout)`` that the ``matmul`` layer multiplied by before 2026-12-03 (commit da5c18d)."""
    cin, cout = weight.shape[:2]
    w = weight.permute(2, 3, 0, 1).reshape(-1, cin, cout)
    wr, wi = w.real, w.imag
    blocks = torch.stack([torch.stack([wr, wi], dim=-1), torch.stack([-wi, wr], dim=-1)], dim=2)
    return blocks.reshape(w.shape[0], 2 * cin, 2 * cout)


def _blocks_forward(self, x: torch.Tensor, channels_last: bool = False,
                    add: torch.Tensor | None = None) -> torch.Tensor:
    """``SpectralConv2d.forward``'s ``matmul`` path with the block weights (commit da5c18d),
    the blocks kept between calls without a gradient to the weight, as there."""
    from seisfno.operator.spectral import _bmm_left, _dft_constants

    w = self.weight
    if w.requires_grad and torch.is_grad_enabled():
        blocks = _blocks_weight(w)
    else:
        key = (w._version, w.data_ptr())
        if getattr(self, "_old_blocks", (None,))[0] != key:
            with torch.no_grad():
                self._old_blocks = (key, _blocks_weight(w))
        blocks = self._old_blocks[1]
    b, cin, n1, n2 = x.shape
    m1, m2 = self.modes1, self.modes2
    cout, k1 = blocks.shape[2] // 2, 2 * m1 - 1
    ax, fz, gz, hx = _dft_constants(n1, n2, m1, m2, x.dtype, str(x.device))
    q = (x.reshape(-1, n2) @ ax).view(b * cin, 2 * n1, m2)
    p = _bmm_left(fz, q)
    low = p.view(b, cin, k1, 2, m2).permute(2, 4, 0, 1, 3).reshape(k1 * m2, b, 2 * cin)
    y = torch.bmm(low, blocks).view(k1, m2, b, cout, 2)
    y = y.permute(2, 3, 0, 4, 1).reshape(b * cout, 2 * k1, m2)
    z = _bmm_left(gz, y).view(-1, 2 * m2)
    out = z @ hx if add is None else torch.addmm(add.reshape(-1, n2), z, hx)
    return out.view(b, cout, n1, n2)


def machine() -> str:
    model, flags, info = platform.processor() or "?", set(), {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name":
                    model = value.strip()
                elif key == "flags":
                    flags = set(value.split())
                elif key in ("cpu family", "model") and key not in info:
                    info[key] = value.strip()
    except OSError:
        pass
    if info:  # a virtual machine may name every generation alike ("AMD EPYC")
        model += f" (family {info.get('cpu family', '?')}, model {info.get('model', '?')})"
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    cfg = torch.__config__.show()
    caps = [f"{k}={os.environ[k]}" for k in ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS",
                                             "ONEDNN_MAX_CPU_ISA") if os.environ.get(k)]
    return (f"{model}, {simd} ({torch.get_num_threads()} threads max)"
            + (f", capped: {' '.join(caps)}" if caps else "")
            + f"; torch {torch.__version__}, "
            f"MKL {'yes' if torch.backends.mkl.is_available() else 'no'}, oneDNN "
            f"{'yes' if torch.backends.mkldnn.is_available() else 'no'}, kernels "
            f"{torch.backends.cpu.get_cpu_capability()}"
            + (", built with MKL FFT" if "MKL" in cfg else ""))


class _ComplexSpectral(nn.Module):
    """A spectral layer as it was before 2026-12-03: complex weights ``(cin, cout, k1, k2)``,
    computed by the old code (``forward``: :func:`_legacy_forward` or :func:`_blocks_forward`)."""

    def __init__(self, layer: SpectralConv2d, forward) -> None:
        super().__init__()
        self.in_channels, self.out_channels = layer.in_channels, layer.out_channels
        self.modes1, self.modes2 = layer.modes1, layer.modes2
        self.weight = nn.Parameter(layer.complex_weight().detach().clone(),
                                   requires_grad=layer.weight.requires_grad)
        self._forward = forward

    def forward(self, x, channels_last=False, pointwise=None):
        add = None if pointwise is None else pointwise(x, channels_last=channels_last)
        return self._forward(self, x, channels_last, add)


def variant_net(net: nn.Module, name: str) -> nn.Module:
    """A copy of the FNO2d ``net`` (same weights) computing as variant ``name`` does."""
    impl, cl = VARIANTS[name]
    net = copy.deepcopy(net)
    net.channels_last = cl
    for i, m in enumerate(net.spectral):
        if impl in ("legacy", "blocks"):
            net.spectral[i] = _ComplexSpectral(
                m, _legacy_forward if impl == "legacy" else _blocks_forward)
        elif impl == "pairs":
            m.impl = "matmul"
            m._frozen_blocks = lambda dtype: None  # never the cached blocks
        else:
            m.impl = impl
    return net


def timed(fn) -> tuple[float, int]:
    """Seconds and page faults (minor, the whole process) of one call of ``fn`` after a
    warm-up call."""
    fn()
    f0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
    fn()
    return time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0


def fwi_case(variants: list[str]):
    model = load_model("quick")
    src = default_sources(model.preset.grid)
    v = torch.full(model.preset.grid.shape, 3000.0, requires_grad=True)
    fwds = {}
    for name in variants:
        m = copy.deepcopy(model)
        m.net = variant_net(model.net, name)
        fwds[name] = OperatorForward(m)

    def step(variant: str):
        u = fwds[variant](v, src)
        torch.autograd.grad(u.square().sum(), v)
    return step, 1


def train_case(preset: str, batch: int, variants: list[str]):
    nt, modes = (50, 16) if preset == "quick" else (100, 24)
    torch.manual_seed(0)
    net0 = build_model("fno2d", nt_out=nt, width=32, modes=modes)
    nets = {name: variant_net(net0, name) for name in variants}
    # legacy: PyTorch's default AdamW (on CPU its single-tensor loop), as training ran before;
    # the others: training's own optimizer (seisfno.operator.train.make_optimizer: fused for
    # real weights, multi-tensor for the complex ones of matmul-blocks)
    opts = {name: torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=0.01)
            if name == BASELINE else make_optimizer(net, 1e-4, 0.01)
            for name, net in nets.items()}
    x, y = torch.randn(batch, 4, 64, 64), torch.randn(batch, nt, 64, 64)

    def step(variant: str):
        net, opt = nets[variant], opts[variant]
        opt.zero_grad(set_to_none=True)
        p = net(x)
        ((p - y).square().sum() / y.square().sum()).backward()
        opt.step()
    return step, batch


CASES = {"fwi": fwi_case, "train quick b8": lambda v: train_case("quick", 8, v),
         "train quick b16": lambda v: train_case("quick", 16, v),
         "train paper b8": lambda v: train_case("paper", 8, v),
         "train paper b16": lambda v: train_case("paper", 16, v)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = ap.parse_args()
    kept = keep_freed_memory()  # as the seisfno command, fit and invert do
    print(f"{datetime.date.today()} - {machine()}; malloc: "
          f"{'freed memory kept (seisfno.keep_freed_memory)' if kept else 'system defaults'}\n")
    variants = list(dict.fromkeys(args.variants + [BASELINE]))
    for threads in args.threads:
        torch.set_num_threads(threads)
        print(f"threads {threads}\n\n| case | variant | s/step | samples/s | speed-up vs "
              f"{BASELINE} | page faults/step |\n| --- | --- | --- | --- | --- | --- |")
        for case in args.cases:
            step, n = CASES[case](variants)
            times, faults = {}, {}
            for _ in range(args.repeat):  # variants interleaved: the same load for each
                for name in variants:
                    t, f = timed(lambda name=name, step=step: step(name))
                    times[name] = min(times.get(name, float("inf")), t)
                    faults.setdefault(name, []).append(f)
            for name in variants:
                print(f"| {case} | {name} | {times[name]:.4f} | {n / times[name]:.1f} | "
                      f"{times[BASELINE] / times[name]:.2f}x | "
                      f"{sorted(faults[name])[len(faults[name]) // 2]} |")
        print()


if __name__ == "__main__":
    main()
