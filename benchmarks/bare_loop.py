"""The yardstick of ``make bench-scale``: a bare PyTorch loop, nothing else. One shuffled epoch
over ``--train`` windows of a (rows, features) float32 matrix, then one validation pass over
``--val`` windows: the same network, optimiser, loss, clipping and batch sizes as ``stockpred
train``. Prints one JSON line (the loop's seconds; the process's own wall is timed outside).

    python -m benchmarks.bare_loop --rows 16000 --features 9 --train 10000 --val 2000
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name in ("rows", "features", "train", "val"):
        parser.add_argument(f"--{name}", type=int, required=True)
    parser.add_argument("--window", type=int, default=60)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument(
        "--max-steps", type=int, default=0, help="cap the optimizer steps (0: the whole epoch)"
    )
    args = parser.parse_args()

    import torch
    from torch import nn

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.rows, args.features, generator=gen)  # (N, F)
    y = torch.randn(args.rows, generator=gen)  # (N,)
    # (N - W + 1, W, F): window i starts at row i, a strided view (no copy)
    view = x.as_strided(
        (args.rows - args.window + 1, args.window, args.features), (args.features, args.features, 1)
    )
    ends = torch.arange(args.window - 1, args.rows)
    train_ends = ends[torch.randperm(len(ends), generator=gen)[: args.train]]
    val_ends = ends[torch.randperm(len(ends), generator=gen)[: args.val]].sort().values

    lstm = nn.LSTM(args.features, args.hidden, args.layers, batch_first=True)
    head = nn.Linear(args.hidden, 1)
    params = [*lstm.parameters(), *head.parameters()]
    optimiser = torch.optim.AdamW(params, lr=1e-3)

    def forward(batch_ends: torch.Tensor) -> torch.Tensor:
        out, _ = lstm(view[batch_ends - args.window + 1])  # (B, W, H)
        return head(out[:, -1]).squeeze(-1)  # (B,)

    order = train_ends[torch.randperm(len(train_ends), generator=gen)]
    if args.max_steps:  # as the pipeline's train.limit_train_batches caps its epoch
        order = order[: args.max_steps * args.batch]
    for start in range(0, len(order), args.batch):
        batch = order[start : start + args.batch]
        optimiser.zero_grad()
        loss = nn.functional.mse_loss(forward(batch), y[batch])
        loss.backward()
        if args.clip:
            nn.utils.clip_grad_norm_(params, args.clip)
        optimiser.step()
    trained = time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(val_ends), args.batch * 4):
            batch = val_ends[start : start + args.batch * 4]
            nn.functional.mse_loss(forward(batch), y[batch])
    done = time.perf_counter()
    print(
        json.dumps(
            {
                "loop_s": done - started,
                "train_s": trained - started,
                "val_s": done - trained,
                "train_windows": args.train,
                "val_windows": args.val,
            }
        )
    )


if __name__ == "__main__":
    main()
