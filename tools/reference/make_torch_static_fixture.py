#!/usr/bin/env python3
"""PyTorch static int8 (eager mode, the x86 default qconfig) on fixed tensors, for the kit's parity tests.

    python3 tools/reference/make_torch_static_fixture.py test/fixtures/quant/torch_static.json

1. HistogramObserver(reduce_range=True), torch's default activation observer on x86, fed a fixed
   sequence of tensors (the range grows, then shrinks): its min/max, histogram and qparams.
2. QuantStub -> Linear -> DeQuantStub under get_default_qconfig("x86"), calibrated on two inputs,
   converted: the quantized layer's input and output qparams, weight scales and its output.
Developers only.
"""
import base64
import json
import sys

import numpy as np
import torch
from torch.ao.quantization import DeQuantStub, HistogramObserver, QuantStub, convert, get_default_qconfig, prepare


def b64(t):
    return base64.b64encode(np.ascontiguousarray(t.detach().float().numpy()).astype("<f4").tobytes()).decode()


def observer_cases():
    cases = []
    g = torch.Generator().manual_seed(11)
    sequences = {
        "growing-then-inside": [torch.randn(3000, generator=g), torch.randn(2000, generator=g) * 2.5 + 0.7, torch.randn(1000, generator=g) * 0.5],
        "gelu-like": [torch.nn.functional.gelu(torch.randn(4000, generator=g) * 3) for _ in range(3)],
        "outliers": [torch.cat([torch.randn(5000, generator=g), torch.tensor([40.0, -25.0])]), torch.randn(5000, generator=g) * 1.2],
    }
    for name, tensors in sequences.items():
        obs = HistogramObserver(reduce_range=True)
        for t in tensors:
            obs(t)
        new_min, new_max = obs._non_linear_param_search()
        scale, zp = obs.calculate_qparams()
        cases.append({
            "name": name, "inputs": [b64(t) for t in tensors],
            "min": float(obs.min_val), "max": float(obs.max_val), "histogram": b64(obs.histogram),
            "search_min": float(new_min), "search_max": float(new_max), "scale": float(scale), "zero_point": int(zp),
        })
    return cases


class Wrapped(torch.nn.Module):
    def __init__(self, lin):
        super().__init__()
        self.quant, self.lin, self.dequant = QuantStub(), lin, DeQuantStub()

    def forward(self, x):
        return self.dequant(self.lin(self.quant(x)))


def linear_case():
    torch.manual_seed(5)
    lin = torch.nn.Linear(64, 32)
    weight, bias = lin.weight.detach().clone(), lin.bias.detach().clone()
    model = Wrapped(lin).eval()
    model.qconfig = get_default_qconfig("x86")
    prepare(model, inplace=True)
    calib = [torch.randn(6, 64) * 1.5, torch.randn(6, 64) + 0.3]
    with torch.no_grad():
        for c in calib:
            model(c)
    convert(model, inplace=True)
    x = torch.randn(4, 64) * 1.3
    with torch.no_grad():
        y = model(x)
    q = model.lin
    return {
        "weight": b64(weight), "bias": b64(bias), "calibration": [b64(c) for c in calib], "input": b64(x), "output": b64(y),
        "input_scale": float(model.quant.scale), "input_zero_point": int(model.quant.zero_point),
        "output_scale": float(q.scale), "output_zero_point": int(q.zero_point),
        "weight_scales": b64(q.weight().q_per_channel_scales()), "weight_codes": q.weight().int_repr().flatten().tolist(),
        "engine": torch.backends.quantized.engine,
    }


if __name__ == "__main__":
    torch.backends.quantized.engine = "x86"
    with open(sys.argv[1], "w") as fh:
        json.dump({"torch": torch.__version__, "observer": observer_cases(), "linear": linear_case()}, fh)
