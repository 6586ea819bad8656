#!/usr/bin/env python3
"""PyTorch peer for bench_train: training images/s of torchvision models on synthetic data.

    python3 bench_torch.py --model resnet50 --batch 128 --precision tf32|fp32|bf16 [--steps 20]

One step = forward, cross-entropy, backward, SGD update (momentum 0), channels_last, as the
issue asks (AMP autocast for bf16).  Prints one line: model, precision, batch, images/s.
"""
import argparse
import time

import torch
import torchvision


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resnet50")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--precision", default="tf32", choices=["fp32", "tf32", "bf16"])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    a = ap.parse_args()

    torch.backends.cuda.matmul.allow_tf32 = a.precision != "fp32"
    torch.backends.cudnn.allow_tf32 = a.precision != "fp32"
    torch.backends.cudnn.benchmark = True
    dev = torch.device("cuda")
    model = getattr(torchvision.models, a.model)(num_classes=1000)
    model = model.to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(a.batch, 3, a.size, a.size, device=dev).to(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (a.batch,), device=dev)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(a.warmup):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    print(f"torch {a.model} {a.precision} batch {a.batch}: {a.batch / med:.1f} images/s "
          f"(median step {med * 1e3:.1f} ms)")


if __name__ == "__main__":
    main()
