"""Keep torch's compile caches apart per forced CPU instruction set.

Why: ``ATEN_CPU_CAPABILITY`` (e.g. ``avx2`` on an AVX-512 machine, how BENCHMARKS.md emulates an
AVX2-only CPU) changes the C++ that inductor generates, but torch 2.13 leaves it out of the keys of
its on-disk caches. Code compiled under one setting is then loaded under the other, and the
solver's compiled step aborted with "double free or corruption (!prev)" (reproduced 2026-12-02:
populate a cache under ``ATEN_CPU_CAPABILITY=avx2``, then run without it, same cache directory).
:func:`separate_compile_caches` adds the setting to torch's cache-key tag, so that each setting has
its own entries. Without the variable (the normal case) it changes nothing.
"""

from __future__ import annotations

import os


def separate_compile_caches() -> None:
    """Fold a forced ``ATEN_CPU_CAPABILITY`` into ``torch.compiler.config.cache_key_tag``."""
    cap = os.environ.get("ATEN_CPU_CAPABILITY", "").strip().lower()
    if not cap:
        return
    import torch.compiler.config as cfg

    tag = f"aten_cpu_capability={cap}"
    if tag not in cfg.cache_key_tag:
        cfg.cache_key_tag = f"{cfg.cache_key_tag};{tag}" if cfg.cache_key_tag else tag
