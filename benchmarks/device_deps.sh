#!/usr/bin/env bash
# Wheels the GPU image lacks (Python 3.12 there): Zarr and Dask for the data stage of
# `seisfno reproduce`. Downloads them into .device_deps/ (ignored by git), to carry with the
# device tool (`carry: [".device_deps"]`, 3.4 MB) and install there with
#   python3 -m pip install -q --no-deps --no-index --target /tmp/deps .device_deps/*.whl
#   PYTHONPATH=src:/tmp/deps python3 -m seisfno reproduce --preset paper --out $OUT/paper
# (the image already has numpy, torch, typer, safetensors, xarray, fsspec, toolz, cloudpickle,
# pyyaml, click, tqdm and matplotlib).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip download -q --no-deps --python-version 3.12 --only-binary=:all: \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_28_x86_64 -d .device_deps \
    "zarr>=3" numcodecs dask donfig crc32c partd locket
ls -l .device_deps
