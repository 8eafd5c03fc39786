#!/usr/bin/env python3
"""Golden quantization fixtures from the real libraries, for test/fixtures/quant/ (developers only).

    python3 tools/reference/make_quant_fixtures.py data/models/whisper-tiny.en/model.safetensors

Needs torch, optimum-quanto, hqq, bitsandbytes (CPU). Two tensors: a slice of a real Whisper weight
(model.decoder.layers.0.fc1.weight[:8], [8, 384], widened from fp16 to fp32) and a seeded normal
tensor [8, 256]. For each library-style scheme it records integer codes, scales, zero points and
the dequantized weight, and for torch's dynamic int8 the output of the quantized linear on a fixed input.
"""
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

OUT = Path("test/fixtures/quant")


def flat(t):
    """float32 values, exactly, as base64 of their little-endian bytes (a quarter the size of JSON decimals)."""
    import base64

    return base64.b64encode(t.detach().reshape(-1).float().contiguous().numpy().astype("<f4").tobytes()).decode()


def ints(t):
    return t.detach().reshape(-1).to(torch.int64).tolist()


def tensors(weights_file):
    real = load_file(weights_file)["model.decoder.layers.0.fc1.weight"][:8].float().contiguous()
    g = torch.Generator().manual_seed(1234)
    rand = torch.randn(8, 256, generator=g) * 0.05
    rand[3, 17] = 0.9  # an outlier, as real weights have
    return {"whisper_fc1": real, "random": rand}


def torch_dynamic(name, W):
    g = torch.Generator().manual_seed(7)
    X = torch.randn(3, W.shape[1], generator=g)
    X[:, 5] *= 8  # an activation outlier column
    out = {}
    for granularity, qconfig in [("per_tensor", torch.ao.quantization.default_dynamic_qconfig), ("per_channel", torch.ao.quantization.per_channel_dynamic_qconfig)]:
        lin = torch.nn.Sequential(torch.nn.Linear(W.shape[1], W.shape[0]))
        lin[0].weight.data = W.clone()
        lin[0].bias.data = torch.linspace(-0.1, 0.1, W.shape[0])
        q = torch.ao.quantization.quantize_dynamic(lin, {torch.nn.Linear: qconfig}, dtype=torch.qint8)
        qw = q[0].weight()
        rec = {"codes": ints(qw.int_repr())}
        if granularity == "per_tensor":
            rec.update(scale=[qw.q_scale()], zero_point=[qw.q_zero_point()])
        else:
            rec.update(scale=flat(qw.q_per_channel_scales()), zero_point=ints(qw.q_per_channel_zero_points()))
        rec["input"] = flat(X)
        rec["input_shape"] = list(X.shape)
        rec["bias"] = flat(lin[0].bias.data)
        with torch.no_grad():
            rec["output"] = flat(q(X))
        out[granularity] = rec
    return out


def quanto(name, W):
    from optimum.quanto import freeze, qfloat8, qint2, qint4, qint8, quantize

    out = {}
    for label, qt in [("int8", qint8), ("int4", qint4), ("int2", qint2), ("float8", qfloat8)]:
        m = torch.nn.Sequential(torch.nn.Linear(W.shape[1], W.shape[0]))
        m[0].weight.data = W.clone()
        quantize(m, weights=qt)
        freeze(m)
        w = m[0].weight
        rec = {"group_size": m[0].weight_group_size}
        if label in ("int8", "float8"):
            data = w._data
            rec["codes"] = ints(data) if label == "int8" else ints(data.view(torch.uint8))
            rec["scale"] = flat(w._scale)
        else:
            rec["codes"] = ints(w._data.unpack())  # grouped [out * groups, group_size], values 0 .. 2^bits - 1
            rec["scale"] = flat(w._scale)
            rec["shift"] = flat(w._shift)
            rec["shift_is_float"] = bool(w._shift.dtype.is_floating_point)
        out[label] = rec
    return out


def hqq(name, W):
    from hqq.core.quantize import Quantizer

    out = {}
    for nbits in [8, 4, 3, 2, 1]:
        for axis in [1, 0]:
            Wq, meta = Quantizer.quantize(W.clone(), nbits=nbits, group_size=64, axis=axis, optimize=True, round_zero=False, bitpack=False, device="cpu")
            deq = (Wq.float() - meta["zero"]) * meta["scale"]
            deq = deq.reshape(W.shape) if axis == 1 else deq.reshape(W.shape)
            out[f"{nbits}bit_axis{axis}"] = {"codes": ints(Wq), "scale": flat(meta["scale"]), "zero": flat(meta["zero"]), "grouped_shape": list(Wq.shape), "dequantized": flat(deq)}
    return out


def bnb(name, W):
    import bitsandbytes.functional as F

    out = {}
    for qt in ["nf4", "fp4"]:
        packed, st = F.quantize_4bit(W.clone(), blocksize=64, quant_type=qt)
        out[qt] = {"packed": ints(packed), "absmax": flat(st.absmax), "code": flat(st.code)}
    # LLM.int8 (threshold 6.0), through bitsandbytes' own MatMul8bitLt path with int8 weights
    import bitsandbytes as bnb_top

    g = torch.Generator().manual_seed(11)
    X = torch.randn(4, W.shape[1], generator=g)
    X[:, 7] *= 9.0  # an outlier feature column, as LLM.int8 targets
    X[2, 40] = -7.5  # a lone outlier
    X16 = X.to(torch.float16)
    W16 = W.to(torch.float16)
    bias16 = torch.linspace(-0.1, 0.1, W.shape[0]).to(torch.float16)
    state = bnb_top.MatmulLtState()
    state.threshold = 6.0
    state.has_fp16_weights = False
    state.is_training = False  # inference: MatMul8bitLt (the outlier decomposition); training on CPU takes a dequantize-and-matmul path
    state.CB, state.SCB, _ = F.int8_vectorwise_quant(W16)
    with torch.no_grad():
        y = bnb_top.matmul(X16, W16, state=state, bias=bias16)
    out["llm_int8"] = {
        "weight_codes": ints(state.CB),
        "weight_absmax": flat(state.SCB),
        "input": flat(X16.float()),
        "input_shape": list(X.shape),
        "bias": flat(bias16.float()),
        "output": flat(y.float()),
        "threshold": 6.0,
    }
    packed, st = F.quantize_4bit(W.clone(), blocksize=64, quant_type="nf4", compress_statistics=True)
    out["nf4_double"] = {
        "packed": ints(packed),
        "absmax_codes": ints(st.absmax),
        "offset": [float(st.offset)],
        "state2_absmax": flat(st.state2.absmax),
        "state2_code": flat(st.state2.code),
        "state2_blocksize": st.state2.blocksize,
        "dequantized_absmax": flat(F.dequantize_blockwise(st.absmax, st.state2) + st.offset),
    }
    return out


def main(weights_file):
    OUT.mkdir(parents=True, exist_ok=True)
    versions = {"torch": torch.__version__}
    for mod in ["optimum.quanto", "hqq", "bitsandbytes"]:
        try:
            m = __import__(mod, fromlist=["__version__"])
            versions[mod] = getattr(m, "__version__", "?")
        except Exception as err:
            versions[mod] = f"missing: {err}"
    for name, W in tensors(weights_file).items():
        fixture = {"versions": versions, "tensor": name, "shape": list(W.shape), "weight": flat(W)}
        for lib, fn in [("torch_dynamic", torch_dynamic), ("quanto", quanto), ("hqq", hqq), ("bnb", bnb)]:
            fixture[lib] = fn(name, W)
        (OUT / f"{name}.json").write_text(json.dumps(fixture) + "\n")
        print(name, (OUT / f"{name}.json").stat().st_size, "bytes")
    print(json.dumps(versions))


if __name__ == "__main__":
    main(*sys.argv[1:])
