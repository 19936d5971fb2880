"""Sliding windows served as strided views over one (rows, features) float32 tensor.

No (samples, window, features) copy is ever built: a batch of windows is gathered with one
indexing op over ``features.unfold``, and only its valid end rows are stored.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


class WindowDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Windows ``features[t - window + 1 : t + 1]`` paired with ``target[t]``.

    ``ends`` holds the valid end rows t: the whole window lies in one group (one ticker's rows of
    one split part, contiguous and in date order), every row in it is finite, and the target is.
    """

    def __init__(
        self,
        features: torch.Tensor,
        target: torch.Tensor,
        ends: torch.Tensor,
        window: int,
        *,
        sequence: bool = False,
    ) -> None:
        if features.ndim != 2 or target.ndim != 1 or len(features) != len(target):
            raise ValueError(
                f"features must be (rows, features) and target (rows,), got "
                f"{tuple(features.shape)} and {tuple(target.shape)}"
            )
        self.features = features  # (N, F)
        self.target = target  # (N,)
        self.ends = ends.long()  # (S,)
        self.window = window
        # sequence: y is (B, W), every step's own target (NaN where it is unknown), gathered
        # like the windows; the rows of a window all lie in one part, so do their targets
        self.sequence = sequence
        # (N - W + 1, W, F): row i is the window starting at row i, a view sharing storage with
        # ``features`` (gathering from it yields a contiguous (B, W, F) batch in one copy)
        rows, width = features.shape
        self._view = (
            features.as_strided((rows - window + 1, window, width), (width, width, 1))
            if rows >= window and features.is_contiguous()
            else None
        )

    @classmethod
    def from_arrays(
        cls,
        features: np.ndarray,
        target: np.ndarray,
        groups: np.ndarray,
        window: int,
        *,
        sequence: bool = False,
    ) -> WindowDataset:
        """Build from row arrays; ``groups`` labels contiguous runs of rows (-1 = never used);
        ``sequence``: targets of every step of a window (see ``__getitems__``)."""
        ends = valid_window_ends(features, target, groups, window)
        return cls(
            torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)),
            torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32)),
            torch.from_numpy(ends),
            window,
            sequence=sequence,
        )

    @property
    def num_features(self) -> int:
        """Features per time step."""
        return int(self.features.shape[1])

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.__getitems__([index])
        return x[0], y[0]

    def __getitems__(self, indices: list[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A whole batch in one gather: x (B, W, F), y (B,) - or y (B, W) with ``sequence``,
        each step's target (row t's target is NaN where its horizon reaches past its part)."""
        assert self._view is not None, "features must be contiguous and hold at least one window"
        ends = self.ends[torch.as_tensor(indices, dtype=torch.long)]
        starts = ends - (self.window - 1)
        if self.sequence:
            steps = starts[:, None] + torch.arange(self.window)  # (B, W) rows
            return self._view[starts], self.target[steps]
        return self._view[starts], self.target[ends]  # (B, W, F), (B,)

    def loader(
        self,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int | None = 0,
        pin_memory: bool = False,
    ) -> DataLoader[tuple[torch.Tensor, torch.Tensor]]:
        """A DataLoader whose fetches are single gathers (``__getitems__``), seeded when shuffled.

        ``seed=None``: no generator of its own. For DDP, where Lightning swaps the sampler for a
        ``DistributedSampler`` (seeded with the run's seed, reshuffled per epoch; fetches stay
        single gathers), and a generator's state, pickled into ``ddp_spawn`` workers as a
        temporary shared-memory tensor, can reach them as a closed file descriptor.
        ``pin_memory`` (for CUDA) copies each gathered batch into page-locked memory, so the
        host-to-GPU copy that Lightning issues with ``non_blocking=True`` overlaps compute.
        """
        generator = torch.Generator().manual_seed(seed) if shuffle and seed is not None else None
        return DataLoader(
            self,
            batch_size=batch_size,
            shuffle=shuffle,
            generator=generator,
            collate_fn=_keep_batch,
            num_workers=0,
            pin_memory=pin_memory,
        )


def _keep_batch(batch: Any) -> Any:
    return batch


def valid_window_ends(
    features: np.ndarray, target: np.ndarray, groups: np.ndarray, window: int
) -> np.ndarray:
    """Rows t whose window [t - window + 1, t] is one group, all finite, with a finite target."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    n = len(groups)
    if n < window:
        return np.empty(0, dtype=np.int64)
    # A row sum is finite iff every value is (NaN and inf propagate): no (rows, features) mask.
    bad = ~np.isfinite(features.sum(axis=1, dtype=np.float64)) | (groups < 0)
    bad_before = np.zeros(n + 1, dtype=np.int32)  # bad rows in [0, i)
    np.cumsum(bad, out=bad_before[1:])
    # Slices, not index arrays: window k starts at row k and ends at row k + window - 1.
    ok = groups[: n - window + 1] == groups[window - 1 :]
    ok &= bad_before[window:] == bad_before[: n - window + 1]
    ok &= np.isfinite(target[window - 1 :])
    # rows of one group must be contiguous for the first check to imply the whole window is in it
    return np.flatnonzero(ok).astype(np.int64) + (window - 1)
