"""seisfno._memory: freed tensors' memory is reused instead of page-faulted in again."""

import os
import platform
import subprocess
import sys

import pytest

SCRIPT = """
import resource, sys
import torch
import seisfno
on = seisfno.keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):  # 64 MiB, allocated and freed (a kernel that reclaims idle memory, such as
    torch.empty(16 << 20).fill_(1.0)  # DAMON's, may take back the first few)
f0 = faults()
for _ in range(5):
    torch.empty(16 << 20).fill_(1.0)
print(on, (faults() - f0) / 5)
"""


def _run(env_extra):
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0] == "True", float(out[1])


def _thp_always() -> bool:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return "[always]" in f.read()
    except OSError:
        return False


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="glibc only")
@pytest.mark.skipif(_thp_always(), reason="huge pages: too few faults to compare")
def test_freed_memory_is_reused_and_the_setting_can_be_declined():
    on, faults = _run({"SEISFNO_MALLOC": ""})
    off, faults_off = _run({"SEISFNO_MALLOC": "system"})
    assert on and not off
    assert faults_off > 8000  # glibc's default: each 16 384 pages mapped, faulted in, unmapped
    assert faults < faults_off / 8, (faults, faults_off)  # reused: not faulted in again
