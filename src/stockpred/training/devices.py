"""Which devices, precision, batch size and DDP strategy a fit uses, asked fork-safely."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

CPU_BATCH_SIZE = 256
GPU_BATCH_SIZE = 1024  # per GPU: a 2x64 LSTM step on 256 windows leaves a GPU mostly idle


def cuda_available() -> bool:
    """Whether this machine has a CUDA GPU, asked without initialising CUDA in this process.

    ``torch.cuda.device_count()`` asks NVML, so ``ddp_fork`` workers forked later can still use
    CUDA. ``torch.cuda.is_available()`` does so only while ``PYTORCH_NVML_BASED_CUDA_CHECK=1``
    (lightning_fabric sets it on import; the user's code can unset it), else it initialises the
    CUDA driver, which "poisons fork". Where NVML cannot answer (e.g. MIG devices) torch falls
    back to the driver, as in Lightning's own device checks.
    """
    return torch.cuda.device_count() > 0


def uses_cuda(accelerator: str) -> bool:
    """Whether Lightning trains on CUDA GPUs with this ``accelerator`` setting (fork-safe)."""
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and cuda_available())


def resolve_precision(precision: str, accelerator: str, *, fork_safe: bool = False) -> str:
    """``auto`` means bf16 mixed precision on CUDA that supports it, else full float32.

    ``fork_safe``: ask in a subprocess, as asking torch here would initialise CUDA in this
    process, which forked (``ddp_fork``) workers then could not use.
    """
    if precision != "auto":
        return precision
    if uses_cuda(accelerator) and cuda_available() and _bf16_supported(fork_safe):
        return "bf16-mixed"
    return "32-true"


def _bf16_supported(fork_safe: bool) -> bool:
    if not fork_safe:
        return torch.cuda.is_bf16_supported()
    probe = "import torch; print(int(torch.cuda.is_bf16_supported()))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300
    )
    return done.stdout.strip() == "1"


def resolve_batch_size(batch_size: int | str, accelerator: str) -> int:
    """``auto``: ``GPU_BATCH_SIZE`` windows per step on CUDA, ``CPU_BATCH_SIZE`` elsewhere."""
    if batch_size != "auto":
        return int(batch_size)
    return GPU_BATCH_SIZE if uses_cuda(accelerator) else CPU_BATCH_SIZE


def device_count(accelerator: str, devices: int | str) -> int:
    """How many devices (one process each) Lightning trains on; ``auto`` mirrors Lightning:
    every CUDA GPU (one in a notebook), else one."""
    if devices != "auto":
        return int(devices)
    if uses_cuda(accelerator) and not interactive():
        return torch.cuda.device_count()
    return 1


def interactive() -> bool:
    """A notebook or interactive interpreter (Lightning's test: no spawned workers there)."""
    return hasattr(sys, "ps1") or bool(sys.flags.interactive)


def resolve_strategy(strategy: str, accelerator: str, devices: int | str) -> str:
    """``auto`` on one device; on several never Lightning's ``ddp``, which re-runs ``sys.argv``
    per rank (the whole pipeline: a new MLflow run each) and cannot start from a notebook or a
    Prefect task. ``auto`` picks ``ddp_spawn`` (fresh worker processes), or ``ddp_fork`` in a
    notebook, where Lightning refuses spawn."""
    if device_count(accelerator, devices) <= 1:
        return "auto"
    if strategy == "auto":
        strategy = "ddp_fork" if interactive() else "ddp_spawn"
    if strategy == "ddp_fork" and uses_cuda(accelerator) and torch.cuda.is_initialized():
        raise ValueError(
            "CUDA is already in use in this process (e.g. an earlier GPU run in this notebook), "
            "so training on several GPUs cannot fork its workers: restart the kernel first, "
            "train on one GPU (train.devices=1), or run `stockpred train --devices N` in a shell"
        )
    if strategy == "ddp_spawn" and interactive():
        raise ValueError(
            "train.strategy=ddp_spawn cannot start worker processes from a notebook or an "
            "interactive session: use train.strategy=auto (or ddp_fork) there"
        )
    return strategy


def resolve_threads(num_threads: int | str) -> int:
    """``auto``: one intra-op thread where there are at most 2 cores (there OpenMP threads spin
    at every barrier while the other core is busy: on the loaded 2-core machine one thread
    trained a median 1.9x faster than two), else torch's own default."""
    if num_threads != "auto":
        return int(num_threads)
    cores = os.cpu_count() or 1
    return 1 if cores <= 2 else torch.get_num_threads()
