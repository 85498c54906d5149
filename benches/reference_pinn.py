#!/usr/bin/env python3
"""Plain-PyTorch reference for `ptycho bench train`: the same PINN as
ptycho-workbench's (encoder, amplitude/phase decoders with centre and border
branches, overlap constraint for gridsize 2, probe, far field, Poisson NLL,
Adam with Keras' epsilon), trained on random inputs of the same sizes, in
eager mode with the same number of threads, on the CPU or a CUDA device.
Also counts the network's FLOPs per sample (forward, and forward + backward
for training) with torch.utils.flop_counter (convolutions and matrix
products; FFTs and element-wise work are not counted).
Prints JSON: {"step_seconds": [...], "peak_rss_mb": ..., "flops_per_sample": ...,
"device": ...}."""
import argparse
import contextlib
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class DoubleConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.a = nn.Conv2d(cin, cout, 3, padding=1)
        self.b = nn.Conv2d(cout, cout, 3, padding=1)

    def forward(self, x):
        return F.relu(self.b(F.relu(self.a(x))))


class Decoder(nn.Module):
    def __init__(self, n, nfs, c, phase):
        super().__init__()
        count = int(math.log2(n // 16))
        last = nfs * 32
        chans, cin = [], nfs * 128
        for j in range(count):
            f = last << (count - 1 - j)
            chans.append(DoubleConv(cin, f))
            cin = f
        self.base = nn.ModuleList(chans)
        self.centre = nn.Conv2d(last - 4, c, 3, padding=1)
        f = nfs * 2048 // n
        self.border = DoubleConv(4, f)
        self.border_out = nn.Conv2d(f, c, 3, padding=1)
        self.phase, self.n = phase, n
        mask = torch.ones(n, n)
        mask[n // 4:3 * n // 4, n // 4:3 * n // 4] = 0
        self.register_buffer("mask", mask)

    def forward(self, z):
        h = z
        for blk in self.base:
            h = F.interpolate(blk(h), scale_factor=2, mode="nearest")
        act = (lambda t: math.pi * torch.tanh(t)) if self.phase else torch.sigmoid
        c = act(self.centre(h[:, :-4]))
        q = self.n // 4
        out = F.pad(c, (q, q, q, q))
        b = F.interpolate(self.border(h[:, -4:]), scale_factor=2, mode="nearest")
        # the border uses the centre's activations (ptycho-workbench's default)
        return out + act(self.border_out(b)) * self.mask


class Pinn(nn.Module):
    def __init__(self, n, gridsize, nfs, probe, scale, max_offset=16.0):
        super().__init__()
        c = gridsize * gridsize
        count = int(math.log2(n // 8))
        blocks, cin = [], c
        for i in range(count):
            f = (nfs * 128) >> (count - 1 - i)
            blocks.append(DoubleConv(cin, f))
            cin = f
        self.encoder = nn.ModuleList(blocks)
        self.amp = Decoder(n, nfs, c, False)
        self.phase = Decoder(n, nfs, c, True)
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale)))
        sign = 1 - 2 * (torch.arange(n) % 2)
        self.register_buffer("probe_mod", probe * (sign[:, None] * sign[None, :]))
        self.c, self.n, self.pad = c, n, int(math.ceil(max_offset)) + 1

    def translate(self, img, shifts):
        # out(x, y) = in(x - dx, y - dy), bilinear, zeros, align_corners=True
        b, h, w = img.shape[0], img.shape[-2], img.shape[-1]
        xs = torch.arange(w, dtype=torch.float32, device=img.device).view(1, 1, w)
        ys = torch.arange(h, dtype=torch.float32, device=img.device).view(1, h, 1)
        gx = (xs - shifts[:, 0].view(-1, 1, 1)) * (2.0 / (w - 1)) - 1
        gy = (ys - shifts[:, 1].view(-1, 1, 1)) * (2.0 / (h - 1)) - 1
        grid = torch.stack([gx.expand(b, h, w), gy.expand(b, h, w)], -1)
        ri = torch.view_as_real(img).permute(0, 3, 1, 2)
        out = F.grid_sample(ri, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        return torch.view_as_complex(out.permute(0, 2, 3, 1).contiguous())

    def patches(self, x):
        h = x
        for blk in self.encoder:
            h = F.max_pool2d(blk(h), 2)
        # float32 physics under autocast, as ptycho-workbench's
        a, phi = self.amp(h).float(), self.phase(h).float()
        return torch.complex(a * torch.cos(phi), a * torch.sin(phi))

    def canvas(self, obj, offsets):
        n, p, c = self.n, self.pad, self.c
        m = n + 2 * p
        flat = F.pad(torch.view_as_real(obj.reshape(-1, n, n)).permute(0, 3, 1, 2), (p, p, p, p))
        flat = torch.view_as_complex(flat.permute(0, 2, 3, 1).contiguous())
        off = offsets.reshape(-1, 2)
        placed = self.translate(flat, off).view(-1, c, m, m).sum(1)
        ones = F.pad(torch.ones(flat.shape[0], n, n, device=obj.device), (p, p, p, p))
        ones = torch.complex(ones, torch.zeros_like(ones))
        cover = self.translate(ones, off).real.view(-1, c, m, m).sum(1)
        return placed / cover.clamp_min(1e-3)

    def diffraction_to_obj(self, x, offsets):
        """The inference model: the object at each group centroid [B, N, N]."""
        obj = self.patches(x)
        if self.c == 1:
            return obj[:, 0]
        p = self.pad
        return self.canvas(obj, offsets)[:, p:p + self.n, p:p + self.n]

    def forward(self, x, offsets):
        obj = self.patches(x)
        if self.c > 1:
            n, p, c = self.n, self.pad, self.c
            m = n + 2 * p
            off = offsets.reshape(-1, 2)
            canvas = self.canvas(obj, offsets)
            rep = canvas.unsqueeze(1).expand(-1, c, m, m).reshape(-1, m, m)
            obj = self.translate(rep, -off)[:, p:p + n, p:p + n].reshape(-1, c, n, n)
        spec = torch.fft.fft2(obj * self.probe_mod, norm="ortho")
        amp = torch.sqrt(spec.real ** 2 + spec.imag ** 2)
        return amp * torch.exp(self.log_scale)


def count_flops(model, x, off, counts, mode):
    """FLOPs of one batch: the inference model (infer) or a training step's
    forward and backward (train), as counted by FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        if mode == "infer":
            with torch.no_grad():
                model.diffraction_to_obj(x, off)
        else:
            lam = model(x, off) ** 2
            loss = (lam - counts * torch.log(lam + 1e-12)).mean()
            loss.backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gridsize", type=int, default=1)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mode", choices=["train", "infer"], default="train",
                    help="train: Adam steps of the autoencoder; infer: diffraction_to_obj under no_grad")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--precision", choices=["fp32", "fp32-strict", "fp16", "bf16"], default="fp32",
                    help="fp32: PyTorch's defaults (on CUDA, cuDNN convolutions may use TF32, as "
                         "libtorch's do); fp32-strict: TF32 off for cuDNN too; fp16: CUDA autocast; "
                         "bf16: autocast to bfloat16 on the device (CUDA or CPU)")
    ap.add_argument("--cudnn-benchmark", type=int, choices=[0, 1], default=0,
                    help="1: torch.backends.cudnn.benchmark = True (ptycho-workbench turns cuDNN's "
                         "autotuner on for training and inference on CUDA, unless PTYCHO_CUDNN_BENCHMARK=0)")
    ap.add_argument("--foreach", action="store_true",
                    help="Adam's multi-tensor implementation, PyTorch's default on CUDA, also on the "
                         "CPU (scripts/op_count.sh counts operators on the CPU as a GPU would run them)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = bool(args.cudnn_benchmark)
    torch.backends.cudnn.allow_tf32 = args.precision != "fp32-strict"
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    low = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(args.precision)
    autocast = (lambda: torch.autocast(dev.type, dtype=low)) if low else contextlib.nullcontext
    torch.manual_seed(0)
    n, c = args.n, args.gridsize ** 2
    yy, xx = torch.meshgrid(torch.arange(n) - n // 2, torch.arange(n) - n // 2, indexing="ij")
    probe = ((xx ** 2 + yy ** 2) < (n / 4) ** 2).to(torch.complex64)
    model = Pinn(n, args.gridsize, 2, probe, 30.0).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7, foreach=True if args.foreach else None)
    x = (torch.rand(args.batch, c, n, n) * 4).to(dev)
    off = ((torch.rand(args.batch, c, 2) - 0.5) * 8).to(dev)
    counts = torch.poisson(torch.rand(args.batch, c, n, n) * 50).to(dev)
    flops = count_flops(model, x, off, counts, args.mode) / args.batch
    times = []
    if args.mode == "infer":
        model.eval()
        with torch.no_grad():
            for i in range(args.warmup + args.steps):
                t = time.perf_counter()
                with autocast():
                    y = model.diffraction_to_obj(x, off)
                y.abs().sum().item()
                sync()
                if i >= args.warmup:
                    times.append(time.perf_counter() - t)
        args.steps = 0
    for i in range(args.warmup + args.steps if args.steps else 0):
        t = time.perf_counter()
        opt.zero_grad()
        with autocast():
            lam = model(x, off).float() ** 2
        loss = (lam - counts * torch.log(lam + 1e-12)).mean()
        loss.backward()
        opt.step()
        loss.item()
        sync()
        if i >= args.warmup:
            times.append(time.perf_counter() - t)
    with open("/proc/self/status") as f:
        peak = next(float(l.split()[1]) / 1024 for l in f if l.startswith("VmHWM:"))
    print(json.dumps({"step_seconds": times, "peak_rss_mb": peak, "flops_per_sample": flops,
                      "device": str(dev), "precision": args.precision}))


if __name__ == "__main__":
    main()
