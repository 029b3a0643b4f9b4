#!/usr/bin/python3
"""PyTorch reference for `npm run bench:models` and `npm run bench:train`: images/second of the same
models, forward only or a whole training step.

Protocol, one JSON object per line: the first stdin line is {"threads": n or null}, answered with
{"torch", "threads"}; every further line is a job {"arch", "size", "batch", "iters", "mode", "warmup_seconds"} (mode:
"forward" (default), "train", or "train_frozen"; untimed runs for warmup_seconds, at least one,
before the `iters` timed ones), answered with
{"arch", "size", "batch", "images_per_second", "seconds_per_batch"} or {"arch", "size", "error"}.
A training step is fastai's: forward in train mode, cross-entropy, backward, AdamW (decoupled weight
decay, betas (0.9, 0.99), eps 1e-5); "train_frozen" freezes the body except its BatchNorm layers.
Jobs come one at a time so the caller can alternate them with its own measurements (on a shared,
noisy machine, both sides then see the same load).
Each model is the body the app uses plus fastai's head (concat pool, BN, dropout, linear 512, ReLU,
BN, dropout, linear 37), in eval mode under no_grad, NCHW float32, with `threads` intra-op threads
(torch's own default when null).
A reference only: the app never runs Python.
"""
import json
import statistics
import sys
import time

import torch
import torch.nn as nn
import torchvision


class ConcatPool(nn.Module):
    def forward(self, x):
        return torch.cat([torch.amax(x, dim=(2, 3)), torch.mean(x, dim=(2, 3))], 1)


def fastai_head(nf, n_out=37):
    return nn.Sequential(
        ConcatPool(),
        nn.BatchNorm1d(2 * nf), nn.Dropout(0.25), nn.Linear(2 * nf, 512, bias=False), nn.ReLU(inplace=True),
        nn.BatchNorm1d(512), nn.Dropout(0.5), nn.Linear(512, n_out, bias=False),
    )


def mobilenet_v1_features(alpha):
    """Keras MobileNet v1 topology: 3x3 conv stride 2, then 13 depthwise-separable blocks, ReLU6."""
    def conv_bn(i, o, k, s, groups=1):
        return [nn.Conv2d(i, o, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(o), nn.ReLU6(inplace=True)]
    plan = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    c = int(32 * alpha)
    layers = conv_bn(3, c, 3, 2)
    for out, stride in plan:
        o = int(out * alpha)
        layers += conv_bn(c, c, 3, stride, groups=c) + conv_bn(c, o, 1, 1)
        c = o
    return nn.Sequential(*layers), c


def build(arch):
    if arch.startswith("resnet"):
        m = getattr(torchvision.models, arch)()
        return nn.Sequential(nn.Sequential(*list(m.children())[:-2]), fastai_head(m.fc.in_features))
    if arch.startswith("mobilenet_v2_"):
        m = torchvision.models.mobilenet_v2(width_mult=float(arch.rsplit("_", 1)[1]))
        return nn.Sequential(m.features, fastai_head(m.last_channel))
    if arch.startswith("mobilenet_v1_"):
        body, nf = mobilenet_v1_features(float(arch.rsplit("_", 1)[1]))
        return nn.Sequential(body, fastai_head(nf))
    raise ValueError(f"no PyTorch reference for {arch}")


def warm_up(run_once, job):
    """Runs run_once at least once and until job["warmup_seconds"] have passed (allocator, oneDNN
    primitive caches, thread pool)."""
    start = time.perf_counter()
    run_once()
    while time.perf_counter() - start < job.get("warmup_seconds", 0):
        run_once()


def run_train(job, frozen):
    model = build(job["arch"]).train()
    if frozen:
        body = model[0]
        for m in body.modules():
            if not isinstance(m, nn.BatchNorm2d):
                for p in m.parameters(recurse=False):
                    p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.01)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.randn(job["batch"], 3, job["size"], job["size"])
    y = torch.randint(0, 37, (job["batch"],))

    def step():
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    warm_up(step, job)
    times = []
    for _ in range(job["iters"]):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    s = statistics.median(times)
    return {"arch": job["arch"], "size": job["size"], "batch": job["batch"], "seconds_per_batch": s, "images_per_second": job["batch"] / s}


def run(job):
    mode = job.get("mode", "forward")
    if mode != "forward":
        return run_train(job, frozen=mode == "train_frozen")
    model = build(job["arch"]).eval()
    x = torch.randn(job["batch"], 3, job["size"], job["size"])
    times = []
    with torch.no_grad():
        warm_up(lambda: model(x), job)
        for _ in range(job["iters"]):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    s = statistics.median(times)
    return {"arch": job["arch"], "size": job["size"], "batch": job["batch"], "seconds_per_batch": s, "images_per_second": job["batch"] / s}


def serve(run):
    """The line protocol shared by the PyTorch reference scripts: config line, then one job per line."""
    config = json.loads(sys.stdin.readline())
    if config.get("threads"):
        torch.set_num_threads(int(config["threads"]))
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        try:
            print(json.dumps(run(job)), flush=True)
        except Exception as e:  # report and go on with the other models
            print(json.dumps({"arch": job["arch"], "size": job["size"], "error": str(e)}), flush=True)


if __name__ == "__main__":
    serve(run)
