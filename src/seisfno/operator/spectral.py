"""Spectral convolutions: the Fourier layer's global part, on any grid size.

A spectral convolution multiplies the lowest ``modes`` frequencies of each channel by learned
complex weights and discards the rest. We keep the *symmetric* band ``|k| < modes`` on every axis:
the last axis uses a real FFT (frequencies ``0 .. modes-1``), the other axes a full FFT (indices
``0 .. modes-1`` and ``n-modes+1 .. n-1``, i.e. frequencies ``-(modes-1) .. modes-1``). The kept
set is closed under ``k -> -k``, so with identity weights the layer is exactly a real FFT low-pass,
on even and odd grids alike (neuraloperator 2.0's released layer mis-indexes odd grids). Grids of
any size with at least ``2 * modes - 1`` nodes per full axis (``modes`` on the last) work with the
same weights: the layer is resolution-independent.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from .._errors import SeisfnoError


def _band(n: int, modes: int) -> tuple[slice, slice]:
    """The two index blocks of a full-FFT axis of length ``n`` holding ``|k| < modes``."""
    if n < 2 * modes - 1:
        raise SeisfnoError(
            f"a grid axis of {n} nodes is too small for {modes} Fourier modes "
            f"(needs at least {2 * modes - 1})")
    return slice(0, modes), slice(n - modes + 1, n)


def _fft_dtype(x: torch.Tensor) -> torch.Tensor:
    """FFTs run in float32 (or float64 when given): half-precision FFTs are unsupported/unsafe."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _init_weight(cin: int, cout: int, *shape: int) -> torch.Tensor:
    scale = 1.0 / (cin * cout)
    return scale * torch.rand(cin, cout, *shape, dtype=torch.cfloat)


def mix_layout(weight: torch.Tensor) -> torch.Tensor:
    """Complex 2-D spectral weights ``(cin, cout, k1, k2)`` as the real parameter of
    :class:`SpectralConv2d`, ``(k1, k2, cin, 2, cout)``: per mode ``[Re w | Im w]`` side by side.

    The layout that :func:`_complex_mix` multiplies by, so that a training step uses the
    parameter as it is (no copy, none in its gradient) and the optimizer can be the fused AdamW,
    which takes real parameters only. Models saved before 2026-12-03 (format version 1) stored the
    complex layout; :meth:`SpectralConv2d._load_from_state_dict` converts them with this.
    """
    return torch.view_as_real(weight).permute(2, 3, 0, 4, 1).contiguous()


def mix_blocks(weight: torch.Tensor) -> torch.Tensor:
    """The parameter of :class:`SpectralConv2d` (:func:`mix_layout`) as real matrices
    ``(k1*k2, 2*cin, 2*cout)``: per mode ``[[Re w, Im w], [-Im w, Re w]]``, so that a row
    ``[Re x | Im x]`` times it is ``[Re(x w) | Im(x w)]``."""
    k1, k2, cin, _, cout = weight.shape
    top = weight.reshape(k1 * k2, cin, 2 * cout)  # [Re w | Im w]
    wr, wi = weight[..., 0, :], weight[..., 1, :]
    bottom = torch.cat([-wi, wr], dim=-1).reshape(k1 * k2, cin, 2 * cout)
    return torch.cat([top, bottom], dim=1).contiguous()


def complex_layout(weight: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`mix_layout`: ``(k1, k2, cin, 2, cout)`` real to ``(cin, cout, k1,
    k2)`` complex (differentiable; the FFT and einsum paths and the tests use it)."""
    return torch.view_as_complex(weight.permute(2, 4, 0, 1, 3).contiguous())


class SpectralConv2d(nn.Module):
    """2-D spectral convolution ``(B, cin, n1, n2) -> (B, cout, n1, n2)``.

    Parameters
    ----------
    in_channels, out_channels : int
    modes1, modes2 : int
        Frequencies kept along the first (full FFT, ``2*modes1-1`` kept) and the last axis
        (real FFT, ``modes2`` kept).

    Attributes
    ----------
    weight : Parameter, float32, shape (2*modes1-1, modes2, in_channels, 2, out_channels)
        The complex weights, real and imaginary parts side by side (:func:`mix_layout`;
        :meth:`complex_weight` gives them as ``(in_channels, out_channels, 2*modes1-1, modes2)``
        complex). Along the first axis, index ``i < modes1`` multiplies frequency ``i``, index
        ``modes1 + j`` frequency ``j - modes1 + 1`` (negative frequencies, increasing).
    """

    def __init__(self, in_channels: int, out_channels: int, modes1: int, modes2: int) -> None:
        super().__init__()
        if min(modes1, modes2) < 1:
            raise SeisfnoError("spectral layers need at least one mode per axis")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.modes1, self.modes2 = modes1, modes2
        self.weight = nn.Parameter(mix_layout(
            _init_weight(in_channels, out_channels, 2 * modes1 - 1, modes2)))
        self._blocks: tuple | None = None  # (weight's key, mix_blocks) while frozen

    #: How the layer is computed; all give the same result to round-off:
    #:
    #: - ``"auto"`` (the default): ``"fftx"`` on CPU outside ``torch.compile``, else (and for an
    #:   empty batch) ``"matmul"`` (channels-first; channels-last runs ``"fft"``);
    #: - ``"fftx"`` (channels-first only): a real FFT along x and an FFT along z of the kept
    #:   columns, the channel mix by one real ``bmm``, forward and backward written out
    #:   (:class:`_SpectralFFTx`); first derivatives only (no double backward, ``torch.func``
    #:   or forward-mode AD: use ``"matmul"`` for those);
    #: - ``"matmul"`` (channels-first only): the kept Fourier modes by truncated DFT matrices,
    #:   every step a real matmul, differentiated by autograd (:func:`_spectral_matmul`);
    #: - ``"fft"``: FFTs, and one real batched matmul for the channel mix (:func:`_mix_real`);
    #: - ``"einsum"``: FFTs and a complex ``einsum`` (earlier releases; the tests' reference).
    impl: str = "auto"

    def complex_weight(self) -> torch.Tensor:
        """The weights as complex ``(cin, cout, 2*modes1-1, modes2)`` (differentiable)."""
        return complex_layout(self.weight)

    def _frozen_blocks(self, dtype: torch.dtype) -> torch.Tensor | None:
        """The channel mix as real 2x2 blocks (:func:`mix_blocks`) while the weights are frozen
        (``requires_grad`` off, as in FWI: :class:`~seisfno.inversion.forward.OperatorForward`),
        else ``None``.

        Why: with the blocks the mix is one ``bmm`` forward and one backward with no pass to
        combine its products: on the ``matmul`` path none of the four slices and the ``cat``
        of :func:`_complex_mix` and their zero-filled gradients (an FWI iteration of the
        shipped ``quick`` model: 3 % faster on AVX2, BENCHMARKS.md), on the ``fftx`` path one
        copy instead of two passes each way (1-3 %).
        Building them costs about one training step's mix, so a trained weight uses them only
        once frozen; they are built once and kept until the weight changes (its version).
        """
        w = self.weight
        if w.requires_grad or torch.compiler.is_compiling():
            return None
        key = (w._version, w.data_ptr(), dtype, w.device)
        if self._blocks is None or self._blocks[0] != key:
            with torch.inference_mode(False), torch.no_grad():
                self._blocks = (key, mix_blocks(w.to(dtype)))
        return self._blocks[1]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "weight"
        w = state_dict.get(key)
        if w is not None and w.is_complex() and w.ndim == 4:  # format version 1 (before 2026-12-03)
            state_dict[key] = mix_layout(w)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor, channels_last: bool = False,
                pointwise: Pointwise | None = None) -> torch.Tensor:
        """``(B, cin, n1, n2) -> (B, cout, n1, n2)``; with ``channels_last``, ``(B, n1, n2, c)``.

        ``pointwise`` (the Fourier layer's pointwise branch) of ``x`` is added to the result:
        on the ``fftx`` path inside the same autograd node (its GEMM accumulates into the
        output, its bias enters the mean coefficient: :class:`_SpectralFFTx`; the module's
        ``weight`` and ``bias`` are read there, its ``forward`` and hooks not called), on
        ``matmul`` by the last GEMM, elsewhere by a sum.
        """
        d1, d2 = (1, 2) if channels_last else (-2, -1)
        n1, n2 = x.shape[d1], x.shape[d2]
        m1, m2 = self.modes1, self.modes2
        if n2 < 2 * m2 - 1:
            _band(n2, m2)  # raises
        lo, hi = _band(n1, m1)
        impl = self.impl
        if impl == "auto":
            impl = ("fftx" if x.device.type == "cpu" and x.shape[0] > 0
                    and not torch.compiler.is_compiling() else "matmul")
        if impl == "fftx" and not channels_last:
            with torch.autocast(x.device.type, enabled=False):
                x = _fft_dtype(x)
                pw = (None, None) if pointwise is None else (
                    pointwise.weight.to(x.dtype),
                    None if pointwise.bias is None else pointwise.bias.to(x.dtype))
                return _SpectralFFTx.apply(x, self.weight.to(x.dtype), *pw, m1,
                                           self._frozen_blocks(x.dtype))
        add = None if pointwise is None else pointwise(x, channels_last=channels_last)
        if impl == "matmul" and not channels_last:
            with torch.autocast(x.device.type, enabled=False):
                x = _fft_dtype(x)
                w, blocks = self.weight.to(x.dtype), self._frozen_blocks(x.dtype)
                add = None if add is None else add.to(x.dtype).contiguous()
                return _spectral_matmul(x, w, m1, m2, add, blocks=blocks)
        # Index the two frequency axes the same way in both layouts.
        at = (lambda i, j: (slice(None), i, j)) if channels_last else (lambda i, j: (..., i, j))
        with torch.autocast(x.device.type, enabled=False):
            # rfft2 as two 1-D passes, the second only on the m2 kept columns (and the same
            # for the inverse: irfft zero-pads the columns): less FFT work and smaller copies.
            xf = torch.fft.fft(torch.fft.rfft(_fft_dtype(x), dim=d2).narrow(d2, 0, m2), dim=d1)
            low = torch.cat([xf[at(lo, slice(None))], xf[at(hi, slice(None))]], dim=d1)
            if self.impl != "einsum":
                y = _mix_real(low, self.weight, channels_last)
            elif channels_last:
                y = torch.einsum("bxyi,ioxy->bxyo", low, self.complex_weight().to(low.dtype))
            else:
                y = torch.einsum("bixy,ioxy->boxy", low, self.complex_weight().to(low.dtype))
            shape = ((x.shape[0], n1, m2, self.out_channels) if channels_last
                     else (x.shape[0], self.out_channels, n1, m2))
            out = xf.new_zeros(shape)
            out[at(lo, slice(None))] = y[at(slice(0, m1), slice(None))]
            out[at(hi, slice(None))] = y[at(slice(m1, None), slice(None))]
            y = torch.fft.irfft(torch.fft.ifft(out, dim=d1), n=n2, dim=d2)
            return y if add is None else y + add


def _interleave(re: torch.Tensor, im: torch.Tensor, dim: int) -> torch.Tensor:
    """Stack ``re`` and ``im`` so that they alternate along ``dim`` (re0, im0, re1, ...)."""
    return torch.stack([re, im], dim=dim + 1).flatten(dim, dim + 1)


@functools.lru_cache(maxsize=16)
def _dft_matrices(n1: int, n2: int, m1: int, m2: int, dtype: torch.dtype, device: str
                  ) -> tuple[torch.Tensor, ...]:
    """Real matrices of the truncated 2-D DFT pair used by :func:`_spectral_matmul`.

    Complex vectors are real ones with real and imaginary parts interleaved; with ``c, s`` the
    cosines and sines of the DFT angles:

    - ``ax (n2, 2*m2)``: the real FFT along x at frequencies ``0..m2-1``, output ``[re | im]``;
    - ``fz (2*k1, 2*n1)``: the FFT along z of a complex signal at the kept frequencies,
      interleaved in and out (``n1`` times the transpose of ``gz``);
    - ``gz (2*n1, 2*k1)``: the inverse FFT along z (``1/n1``), interleaved in and out;
    - ``hx (2*m2, n2)``: the inverse real FFT along x of ``[re | im]`` (``1/n2``, doubled for
      ``k > 0``; the imaginary part at ``k = 0`` is ignored, as ``irfft`` does).

    x goes first forward and last inverse: the real axis shrinks from ``n2`` nodes to ``m2``
    complex modes before the complex z transform, a third fewer flops than z first.
    """
    f64 = torch.float64
    kz = torch.cat([torch.arange(m1), torch.arange(n1 - m1 + 1, n1)]).to(f64)  # weights' order
    az = 2 * math.pi / n1 * torch.outer(kz, torch.arange(n1, dtype=f64))
    ax = 2 * math.pi / n2 * torch.outer(torch.arange(m2, dtype=f64), torch.arange(n2, dtype=f64))
    cz, sz, cx, sx = az.cos(), az.sin(), ax.cos().T, ax.sin().T  # (k1, n1), (n2, m2)
    gz = _interleave(_interleave(cz.T, -sz.T, 1), _interleave(sz.T, cz.T, 1), 0) / n1
    c = torch.full((m2, 1), 2.0, dtype=f64)
    c[0] = 1.0
    hx = torch.cat([c * cx.T, -c * sx.T], dim=0) / n2
    mats = (torch.cat([cx, -sx], dim=1), n1 * gz.T, gz, hx)
    return tuple(m.to(dtype=dtype, device=device).contiguous() for m in mats)


def _dft_constants(n1: int, n2: int, m1: int, m2: int, dtype: torch.dtype, device: str,
                   make=None) -> tuple[torch.Tensor, ...]:
    """:func:`_dft_matrices` (or the cached ``make`` with the same arguments, e.g.
    :func:`_fftx_scales`), made as ordinary constants whatever the caller's grad mode (an
    inference tensor in the cache would break every later backward pass that saves one)."""
    with torch.inference_mode(False), torch.no_grad():
        return (make or _dft_matrices)(n1, n2, m1, m2, dtype, device)


def _bmm_left(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``a (m, k) @ x (B, k, n)`` as a bmm (``matmul`` would fold it into a transposed mm)."""
    return torch.bmm(a.expand(x.shape[0], *a.shape), x)


def _spectral_matmul(x: torch.Tensor, weight: torch.Tensor, m1: int, m2: int,
                     add: torch.Tensor | None = None, blocks: torch.Tensor | None = None
                     ) -> torch.Tensor:
    """The spectral convolution of channels-first ``x (B, cin, n1, n2)`` by real matmuls only.

    Why: only ``(2*m1-1) x m2`` of the ``n1 x (n2/2+1)`` Fourier coefficients are kept, so the
    truncated DFT as dense matrices costs a few times an FFT's flops but runs as a few large
    MKL GEMMs, with none of the FFT's layout copies, zero-filled spectra or scatter; complex
    numbers are interleaved real pairs, so every DFT step is one matmul on a view of the last
    (measured in ``benchmarks/operator_cpu.py``). Equal to the FFT path to round-off (tested).
    ``weight`` is the layer's parameter (:func:`mix_layout`); ``add`` (``(B, cout, n1, n2)``,
    contiguous) is added by the last GEMM (no extra pass); ``blocks`` (:func:`mix_blocks` of
    ``weight``, for frozen weights) mixes the channels by one ``bmm`` instead.
    """
    b, cin, n1, n2 = x.shape
    cout, k1 = weight.shape[-1], 2 * m1 - 1
    ax, fz, gz, hx = _dft_constants(n1, n2, m1, m2, x.dtype, str(x.device))
    q = (x.reshape(-1, n2) @ ax).view(b * cin, 2 * n1, m2)  # rows (node, re/im)
    p = _bmm_left(fz, q)  # (B*cin, 2*k1, m2): rows (z-mode, re/im), columns x-modes
    if blocks is None:
        low = p.view(b, cin, k1, 2, m2).permute(2, 4, 3, 0, 1).reshape(k1 * m2, 2 * b, cin)
        y = _complex_mix(low, weight).view(k1, m2, 2, b, cout).permute(3, 4, 0, 2, 1)
    else:  # rows [Re x | Im x] per mode
        low = p.view(b, cin, k1, 2, m2).permute(2, 4, 0, 3, 1).reshape(k1 * m2, b, 2 * cin)
        y = torch.bmm(low, blocks).view(k1, m2, b, 2, cout).permute(2, 4, 0, 3, 1)
    y = y.reshape(b * cout, 2 * k1, m2)  # rows (z-mode, re/im)
    z = _bmm_left(gz, y).view(-1, 2 * m2)  # (B*cout*n1, 2*m2): per node [re | im]
    out = z @ hx if add is None else torch.addmm(add.reshape(-1, n2), z, hx)
    return out.view(b, cout, n1, n2)


@functools.lru_cache(maxsize=16)
def _fftx_scales(n1: int, n2: int, m1: int, m2: int, dtype: torch.dtype, device: str
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The backward's per-x-mode scales of :class:`_SpectralFFTx` (shape ``(m2, 1, 1)``): ``c``,
    the adjoint of the inverse transform (``irfft``: ``1/n2``, ``2/n2`` for ``k > 0``; ``ifft``
    along z: ``1/n1``) and ``d``, the adjoint of the forward one (``rfft``: ``n2``, ``n2/2`` for
    ``k > 0``; ``fft`` along z: ``n1``), so that each adjoint is the other transform. Valid while
    x's Nyquist frequency is not kept (``n2 >= 2*m2-1``). (``m1`` only keys the cache.)"""
    c = torch.full((m2,), 2.0 / (n2 * n1), dtype=torch.float64)
    c[0] = 1.0 / (n2 * n1)
    d = torch.full((m2,), n2 * n1 / 2, dtype=torch.float64)
    d[0] = float(n2 * n1)
    return tuple(v.to(dtype=dtype, device=device).view(m2, 1, 1) for v in (c, d))


def _kept_rows(v: torch.Tensor, m1: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The kept z frequencies of ``v`` (z on dim 0) in the weights' order: ``0 .. m1-1``, then
    ``-(m1-1) .. -1``."""
    return v[:m1], v[v.shape[0] - m1 + 1:]


def _fft_kept(x: torch.Tensor, m1: int, m2: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Real ``x (B, c, n1, n2)`` to its kept Fourier coefficients, ``rfft`` along x then ``fft``
    along z of the ``m2`` kept columns only: two real views ``(kz, m2, re/im, B, c)``, the
    positive and the negative z frequencies (:func:`_kept_rows`)."""
    xf = torch.fft.fft(torch.fft.rfft(x, dim=-1)[..., :m2], dim=-2)
    return _kept_rows(torch.view_as_real(xf).permute(2, 3, 4, 0, 1), m1)


def _spectrum(like: torch.Tensor, b: int, c: int, n1: int, m1: int, m2: int
              ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """An uninitialised ``(B, c, n1, m2, re/im)`` spectrum with its unkept z rows zeroed, and the
    two views ``(kz, m2, re/im, B, c)`` of its kept rows, to be written by the channel mix."""
    buf = like.new_empty(b, c, n1, m2, 2)
    buf[:, :, m1:n1 - m1 + 1].zero_()
    return buf, _kept_rows(buf.permute(2, 3, 4, 0, 1), m1)


def _ifft_spectrum(buf: torch.Tensor, n2: int) -> torch.Tensor:
    """The inverse of :func:`_fft_kept` on a :func:`_spectrum`: ``ifft`` along z, ``irfft``
    (zero-padding the columns) along x."""
    return torch.fft.irfft(torch.fft.ifft(torch.view_as_complex(buf), dim=-2), n=n2, dim=-1)


def _mode_rows(b: int, *widths: int) -> int:
    """Rows per mode of the channel mix's buffers: ``b`` (``2*B`` or ``B``), one more when a
    mode's stride (``b * width`` elements) is a multiple of 256 elements (1 KiB in float32).

    Why: the copies between the DFT's layout and the mix's cross the mode axis; with a stride of
    4 KiB (``paper`` at batch 16: 32 rows of 32 channels) the elements of a cache line's worth
    fall into one cache set, and such a copy ran 4x slower (1.6 against 0.4 ms). A zero row
    costs ``1/b`` more multiply work in the mix. (It cannot help when a width is itself a
    multiple of 256; no network here is that wide.)"""
    return b + 1 if any(b * w % 256 == 0 for w in widths) else b


class _SpectralFFTx(torch.autograd.Function):
    """The spectral convolution of channels-first ``x (B, cin, n1, n2)`` plus its pointwise
    branch (or none): a real FFT along x, an FFT along z of the ``m2`` kept columns only, the
    channel mix by one real ``bmm``, and the inverse the same way back; forward and backward
    written out (the CPU default, :attr:`SpectralConv2d.impl` ``"fftx"``).

    Why: a real FFT along the contiguous x axis takes half the time of the truncated DFT's GEMM
    there (``paper`` at batch 16: 1.0 against 2.2 ms), and along z the FFT of the kept columns
    beats the truncated DFT's complex GEMM once ``2*m1-1`` of ``n1`` rows are kept: 0.40
    against 0.74 ms for the shipped ``quick`` model's FWI shape (31 of 72 rows; an FWI
    iteration 1.04x, a ``paper`` training step 1.04-1.06x, ``quick`` a tie). Left to autograd,
    the complex steps' backward made conjugated copies and the mix's slices four zero-filled
    full-size gradients. Here each pass writes straight into the layout the next step reads
    (``out=`` into permuted views: the mix writes the kept rows of a spectrum whose other rows
    are zeroed, :func:`_spectrum`), the adjoint of each transform is the other one with a
    per-mode scale folded into a copy the mix makes anyway (:func:`_fftx_scales`), and the
    mix's buffers get a padding row (:func:`_mode_rows`). A ``paper`` layer with its pointwise
    branch, forward and backward, is 1.2-1.4x faster than the DFT-matmul layer (``"matmul"``)
    at batch 8-16 (``benchmarks/spectral_layer_cpu.py``, BENCHMARKS.md). Equal to the other
    paths to round-off (tested, and by ``gradcheck``).

    The pointwise branch ``pw_weight @ x + pw_bias`` (or none) is part of the node: its GEMM
    accumulates into the inverse transform's output (and, backward, into the input's
    gradient), and its bias is added to the mean (DC) coefficient, ``n1*n2`` times, before the
    inverse transform; no pass over the output or the gradient to sum the two branches (an
    FWI iteration 1.03-1.05x, AVX2).

    ``weight`` is the layer's parameter (:func:`mix_layout`); ``blocks`` (:func:`mix_blocks`
    of it, frozen weights) mixes ``[Re x | Im x]`` rows instead of ``[Re x; Im x]``.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, pw_weight: torch.Tensor | None,
                pw_bias: torch.Tensor | None, m1: int, blocks: torch.Tensor | None
                ) -> torch.Tensor:
        b, cin, n1, n2 = x.shape
        k1, m2, _, _, cout = weight.shape
        modes = k1 * m2
        pos, neg = _fft_kept(x, m1, m2)  # (kz, m2, re/im, B, cin)
        buf, (ypos, yneg) = _spectrum(x, b, cout, n1, m1, m2)  # views (kz, m2, re/im, B, cout)
        if blocks is None:  # per mode [Re x; Im x] @ [Re w | Im w]
            rows = _mode_rows(2 * b, cin, 2 * cout)
            low = x.new_empty(modes, rows, cin)
            low[:, 2 * b:].zero_()
            lv = low[:, :2 * b].view(k1, m2, 2, b, cin)
            lv[:m1].copy_(pos)
            lv[m1:].copy_(neg)
            prod = torch.bmm(low, weight.reshape(modes, cin, 2 * cout))
            prod = prod.view(k1, m2, rows, 2 * cout)
            re, im = prod[:, :, :b], prod[:, :, b:2 * b]
            for kz, yv in ((slice(0, m1), ypos), (slice(m1, k1), yneg)):
                torch.sub(re[kz, ..., :cout], im[kz, ..., cout:], out=yv[:, :, 0])  # xr wr - xi wi
                torch.add(re[kz, ..., cout:], im[kz, ..., :cout], out=yv[:, :, 1])  # xr wi + xi wr
        else:  # per mode [Re x | Im x] @ [[Re w, Im w], [-Im w, Re w]]
            rows = _mode_rows(b, 2 * cin, 2 * cout)
            low = x.new_empty(modes, rows, 2 * cin)
            low[:, b:].zero_()
            lv = low[:, :b].view(k1, m2, b, 2, cin)
            lv[:m1].copy_(pos.transpose(2, 3))
            lv[m1:].copy_(neg.transpose(2, 3))
            prod = torch.bmm(low, blocks).view(k1, m2, rows, 2, cout)
            ypos.copy_(prod[:m1, :, :b].transpose(2, 3))
            yneg.copy_(prod[m1:, :, :b].transpose(2, 3))
        if pw_bias is not None:  # a constant over the grid: the mean coefficient's real part
            buf[:, :, 0, 0, 0].add_(pw_bias, alpha=n1 * n2)
        out = _ifft_spectrum(buf, n2)
        if pw_weight is not None:
            out.view(b, cout, -1).baddbmm_(pw_weight.expand(b, cout, cin), x.reshape(b, cin, -1))
        # Only what the backward reads: the mix's input for the weight's gradient, the weight (or
        # its blocks) and the pointwise weight for the input's, the input for the pointwise
        # weight's gradient. A frozen spectral weight changed in place before the backward is
        # then no error (its blocks are a new tensor when it changes); the pointwise weight, as
        # under autograd before, is saved as it is, and such a change is an error.
        need_x, need_w, need_pw = ctx.needs_input_grad[:3]
        ctx.save_for_backward(low if need_w else None,
                              weight if need_x and blocks is None else None,
                              blocks if need_x else None,
                              pw_weight if need_x else None,
                              x if need_pw else None)
        ctx.dims = (b, n1, n2, m1, tuple(weight.shape), blocks is not None)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: torch.Tensor):
        low, weight, blocks, pw_weight, x = ctx.saved_tensors
        b, n1, n2, m1, wshape, frozen = ctx.dims
        k1, m2, cin, _, cout = wshape
        modes = k1 * m2
        need_x, need_w, need_pw, need_pb = ctx.needs_input_grad[:4]
        g3 = g.reshape(b, cout, -1) if need_pw or pw_weight is not None else None
        g_pw = torch.bmm(g3, x.reshape(b, cin, -1).transpose(1, 2)).sum(0) if need_pw else None
        g_pb = g.sum((0, 2, 3)) if need_pb else None
        if not (need_x or need_w):
            return None, None, g_pw, g_pb, None, None
        c, d = _dft_constants(n1, n2, m1, m2, g.dtype, str(g.device), _fftx_scales)
        gpos, gneg = _fft_kept(g, m1, m2)  # (kz, m2, re/im, B, cout)
        halves = ((slice(0, m1), gpos), (slice(m1, k1), gneg))
        # d/d(prod) with the adjoint of the inverse transform's scale c; for the pairs
        # [[g_re, g_im], [g_im, -g_re]]
        if not frozen:
            gprod = g.new_empty(modes, _mode_rows(2 * b, cin, 2 * cout), 2 * cout)
            gprod[:, 2 * b:].zero_()
            g4 = gprod.view(k1, m2, -1, 2 * cout)
            top, bottom = g4[:, :, :b], g4[:, :, b:2 * b]
            for kz, gy in halves:
                torch.mul(gy[:, :, 0], c, out=top[kz, ..., :cout])
                torch.mul(gy[:, :, 1], c, out=top[kz, ..., cout:])
            bottom[..., :cout].copy_(top[..., cout:])
            torch.neg(top[..., :cout], out=bottom[..., cout:])
            mat = None if weight is None else weight.reshape(modes, cin, 2 * cout)
        else:
            rows = _mode_rows(b, 2 * cin, 2 * cout)
            gprod = g.new_empty(modes, rows, 2 * cout)
            gprod[:, b:].zero_()
            gv = gprod[:, :b].view(k1, m2, b, 2, cout)
            for kz, gy in halves:
                torch.mul(gy.transpose(2, 3), c.unsqueeze(-1), out=gv[kz])
            mat = blocks
        gx = gw = None
        if need_x:
            glow = torch.bmm(gprod, mat.transpose(1, 2))
            buf, kept = _spectrum(g, b, cin, n1, m1, m2)  # views (kz, m2, re/im, B, cin)
            if not frozen:
                src = glow[:, :2 * b].view(k1, m2, 2, b, cin)
            else:
                src = glow[:, :b].view(k1, m2, b, 2, cin)
                kept = tuple(v.transpose(2, 3) for v in kept)
            torch.mul(src[:m1], d.unsqueeze(-1), out=kept[0])
            torch.mul(src[m1:], d.unsqueeze(-1), out=kept[1])
            gx = _ifft_spectrum(buf, n2)
            if pw_weight is not None:
                gx.view(b, cin, -1).baddbmm_(pw_weight.t().expand(b, cin, cout), g3)
        if need_w:
            gw = torch.bmm(low.transpose(1, 2), gprod).view(wshape)
        return gx, gw, g_pw, g_pb, None, None


def _complex_mix(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Per mode, complex ``x @ w`` by one real batched matmul (MKL's batched sgemm).

    ``x (k, 2*B, cin)``: rows ``[Re x; Im x]`` (the real parts of the B rows, then their imaginary
    parts); ``weight (k1, k2, cin, 2, cout)`` with ``k1*k2 = k``: ``[Re w | Im w]`` per mode
    (:func:`mix_layout`). The product ``[xr; xi] @ [wr | wi]`` holds the four real products; two
    small passes over the output combine them. Returns ``(k, 2*B, cout)``, rows ``[Re(x w);
    Im(x w)]``. The 2x2 real blocks ``[[wr, wi], [-wi, wr]]`` used before were twice the size and
    were built from the complex weights at every training step (12 % of a ``paper`` step; issue 12).
    """
    b, cin, cout = x.shape[1] // 2, x.shape[2], weight.shape[-1]
    p = torch.bmm(x, weight.reshape(x.shape[0], cin, 2 * cout))
    rr, ri = p[:, :b, :cout], p[:, :b, cout:]  # xr wr, xr wi
    ir, ii = p[:, b:, :cout], p[:, b:, cout:]  # xi wr, xi wi
    return torch.cat([rr - ii, ri + ir], dim=1)


def _mix_real(low: torch.Tensor, weight: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """``einsum("bixy,ioxy->boxy", low, w)`` (or its channels-last form) as one real bmm, for
    the complex weights ``w`` whose :func:`mix_layout` is ``weight``.

    Why not ``einsum`` on complex tensors: on CPU it becomes a complex batched matmul over the
    modes that PyTorch runs with one small copy per mode (thousands of ``copy_`` and ``select``
    calls per FWI iteration, forward and backward). Stacking real and imaginary parts makes it
    one real ``bmm`` (MKL's batched sgemm) over the ``k1*k2`` modes (:func:`_complex_mix`), and
    its backward two more. Same weights, same result to round-off (tested against ``einsum``).
    Returns a complex view in the layout of ``low``.
    """
    cout = weight.shape[-1]
    xr = torch.view_as_real(low)
    if channels_last:  # (B, k1, k2, cin, 2)
        b, k1, k2, cin = low.shape
        xr = xr.permute(1, 2, 4, 0, 3)
    else:  # (B, cin, k1, k2, 2)
        b, cin, k1, k2 = low.shape
        xr = xr.permute(2, 3, 4, 0, 1)
    y = _complex_mix(xr.reshape(k1 * k2, 2 * b, cin), weight.to(xr.dtype))
    y = y.view(k1, k2, 2, b, cout)
    return torch.view_as_complex(y.permute((3, 0, 1, 4, 2) if channels_last else (3, 4, 0, 1, 2))
                                 .contiguous())


class SpectralConv3d(nn.Module):
    """3-D spectral convolution ``(B, cin, n1, n2, n3) -> (B, cout, n1, n2, n3)``.

    Full FFTs on the first two axes (``2*modes-1`` frequencies kept each), a real FFT on the
    last (``modes3`` kept). Weight shape ``(cin, cout, 2*modes1-1, 2*modes2-1, modes3)``.
    """

    def __init__(self, in_channels: int, out_channels: int, modes1: int, modes2: int,
                 modes3: int) -> None:
        super().__init__()
        if min(modes1, modes2, modes3) < 1:
            raise SeisfnoError("spectral layers need at least one mode per axis")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.modes1, self.modes2, self.modes3 = modes1, modes2, modes3
        self.weight = nn.Parameter(_init_weight(in_channels, out_channels, 2 * modes1 - 1,
                                                2 * modes2 - 1, modes3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n1, n2, n3 = x.shape[-3:]
        m1, m2, m3 = self.modes1, self.modes2, self.modes3
        if n3 < 2 * m3 - 1:
            _band(n3, m3)
        b1, b2 = _band(n1, m1), _band(n2, m2)
        with torch.autocast(x.device.type, enabled=False):
            xf = torch.fft.rfftn(_fft_dtype(x), dim=(-3, -2, -1))
            xf = xf[..., :m3]
            low = torch.cat([torch.cat([xf[..., s1, s2, :] for s2 in b2], dim=-2)
                             for s1 in b1], dim=-3)
            y = torch.einsum("bixyz,ioxyz->boxyz", low, self.weight.to(low.dtype))
            out = xf.new_zeros(x.shape[0], self.out_channels, n1, n2, n3 // 2 + 1)
            for s1, r1 in zip(b1, (slice(0, m1), slice(m1, None)), strict=True):
                for s2, r2 in zip(b2, (slice(0, m2), slice(m2, None)), strict=True):
                    out[..., s1, s2, :m3] = y[..., r1, r2, :]
            return torch.fft.irfftn(out, s=(n1, n2, n3), dim=(-3, -2, -1))


class Pointwise(nn.Linear):
    """A 1x1 convolution ``(B, cin, *spatial) -> (B, cout, *spatial)`` as one batched matmul.

    Same parameters and initialization as :class:`torch.nn.Linear`. On CPU its backward is
    several times faster than ``Conv2d(kernel_size=1)``'s (oneDNN), which dominated training.
    With ``channels_last`` the input is ``(B, *spatial, cin)`` and this is plain ``Linear``.
    """

    def forward(self, x: torch.Tensor, channels_last: bool = False, scale: float = 1.0
                ) -> torch.Tensor:
        """The 1x1 convolution of ``x``, times ``scale`` (folded into the GEMM, no extra pass)."""
        w = self.weight.to(x.dtype)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        # ``scale`` multiplies the weight and the bias, two small tensors. As ``baddbmm``'s alpha
        # it would cost a pass over the input's gradient: autograd multiplies the backward GEMM's
        # result by alpha (an operator FWI iteration 1.02x without it, AVX2).
        if scale != 1.0:
            w, bias = w * scale, None if bias is None else bias * scale
        if channels_last:
            return F.linear(x, w, bias)
        # An explicit bmm with the weight expanded over the batch: ``matmul`` folds a 2-D @ 3-D
        # product into one transposed mm, whose transposed output made every following op
        # (GELU and its backward above all) run on strided memory, several times slower.
        # The bias enters the GEMM (``baddbmm``) rather than a separate pass over the output.
        b, spatial = x.shape[0], x.shape[2:]
        x3 = x.reshape(b, x.shape[1], -1)
        if bias is None:
            y = torch.bmm(w.expand(b, *w.shape), x3)
        else:
            y = torch.baddbmm(bias[:, None], w.expand(b, *w.shape), x3)
        return y.view(b, -1, *spatial)


def lowpass(x: torch.Tensor, modes: int, ndim: int = 2) -> torch.Tensor:
    """The FFT low-pass ``|k| < modes`` on the last ``ndim`` axes (the identity layer's output)."""
    dims = tuple(range(-ndim, 0))
    xf = torch.fft.fftn(x.double(), dim=dims)
    mask = torch.ones((), dtype=torch.bool)
    for d in dims:
        n = x.shape[d]
        k = torch.fft.fftfreq(n, d=1.0 / n).abs()
        shape = [1] * ndim
        shape[d] = n
        mask = mask & (k < modes).reshape(shape)
    return torch.fft.ifftn(xf * mask, dim=dims).real.to(x.dtype)


def n_params(module: nn.Module) -> int:
    """Number of real parameters (a complex weight counts twice)."""
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in module.parameters())


__all__ = ["Pointwise", "SpectralConv2d", "SpectralConv3d", "complex_layout", "lowpass",
           "mix_blocks", "mix_layout", "n_params"]
