#!/usr/bin/python3
"""PyTorch reference for test/bench/wasm-kernels.bench.ts: training-step and forward images/second.

Protocol, one JSON object per line (as torch_reference.py): the first stdin line is {"threads": n or
null}, answered with {"torch", "threads"}; every further line is a job
{"arch", "size", "batch", "iters"}, answered with {"arch", "size", "batch", "train_ips",
"forward_ips"} or {"arch", "size", "error"}.
The models are torch_reference.py's (torchvision body + fastai head, 37 classes), so this bench and
the forward bench compare the same networks. A training step is what the app does per batch:
train mode (batch statistics, dropout), cross-entropy, backward, Adam step. Forward is eval mode
under no_grad. Each figure is the median of `iters` runs after one warm-up.
A reference only: the app never runs Python.
"""
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_reference import build, serve  # noqa: E402  (same models and protocol as the other benches)


def median_time(fn, iters):
    fn()  # warm-up: allocator, oneDNN primitive caches
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def run(job):
    torch.manual_seed(0)
    model = build(job["arch"])
    batch, size = job["batch"], job["size"]
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 37, (batch,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    model.train()
    train = median_time(train_step, job["iters"])
    model.eval()
    with torch.no_grad():
        forward = median_time(lambda: model(x), job["iters"])
    return {"arch": job["arch"], "size": size, "batch": batch, "train_ips": batch / train, "forward_ips": batch / forward}


if __name__ == "__main__":
    serve(run)
