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


def mobilenet_v1(num_classes=1000):
    """TF-slim's MobilenetV1 (torchvision has none): conv 3x3/2 32, then 13 depthwise-separable
    pairs (3x3 depthwise + BN + relu6, 1x1 pointwise + BN + relu6), global pool, 1x1 logits."""
    nn = torch.nn

    def cbr(cin, cout, k, s, groups=1):
        return [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False),
                nn.BatchNorm2d(cout, eps=1e-3), nn.ReLU6(inplace=True)]

    layers = cbr(3, 32, 3, 2)
    spec = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + \
           [(1024, 2), (1024, 1)]
    cin = 32
    for cout, s in spec:
        layers += cbr(cin, cin, 3, s, groups=cin) + cbr(cin, cout, 1, 1)
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Dropout(0.001), nn.Conv2d(cin, num_classes, 1),
               nn.Flatten()]
    return nn.Sequential(*layers)


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
    if a.model == "mobilenet_v1":
        model = mobilenet_v1()
    elif a.model == "inception_v3":   # main logits only, as bench_train's loss
        model = torchvision.models.inception_v3(num_classes=1000, aux_logits=False,
                                                init_weights=False)
    else:
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
