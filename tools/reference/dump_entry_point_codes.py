#!/usr/bin/env python3
"""Each library's codes for full real Whisper layers, made through the entry points the study used
(developers only; the kit never runs this).

    data/ref/venv/bin/python tools/reference/dump_entry_point_codes.py data/models/whisper-tiny.en data/ref/codes

  torch      quantize_dynamic(model, {nn.Linear}, dtype=qint8)            (per tensor, and per channel)
  quanto     quantize(model, weights=qint8|qfloat8|qint4|qint2); freeze(model)
  hqq        HQQLinear(linear, BaseQuantizeConfig(nbits, group_size=64, axis=1), compute_dtype=float32, device="cpu")
             (what transformers' HqqConfig built for each nn.Linear; HqqConfig itself is gone from transformers 5)
  bnb        Linear4bit(quant_type=nf4|fp4, compute_dtype=float32|float16, compress_statistics=False|True).to("cpu")   (BitsAndBytesConfig's layer)
             Linear8bitLt(has_fp16_weights=False, threshold=6.0).to("cpu")             (load_in_8bit's layer)

Writes, per layer and configuration, <out>/<model>/<layer>/<config>.codes (int16 little-endian, the
weight's [out, in] order) and, where the library stores them, .scale / .zero (float32) with a
config.json of shapes and versions. `node build/tools/parity-fixtures.js` turns these into the
small committed fixtures of test/fixtures/parity/.
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

LAYERS = {
    "whisper-tiny.en": ["model.encoder.layers.0.self_attn.q_proj", "model.encoder.layers.0.fc1", "model.decoder.layers.3.fc2"],
    "whisper-base": ["model.encoder.layers.0.self_attn.q_proj", "model.decoder.layers.5.fc1"],
}


def linear_of(weights, name):
    W = weights[f"{name}.weight"].float()
    bias = weights.get(f"{name}.bias")
    lin = torch.nn.Linear(W.shape[1], W.shape[0], bias=bias is not None)
    with torch.no_grad():
        lin.weight.copy_(W)
        if bias is not None:
            lin.bias.copy_(bias.float())
    return lin


def save(folder, config, codes, scale=None, zero=None):
    folder.mkdir(parents=True, exist_ok=True)
    np.asarray(codes.detach().reshape(-1).to(torch.int16).numpy(), dtype="<i2").tofile(folder / f"{config}.codes")
    if scale is not None:
        np.asarray(scale.detach().reshape(-1).float().numpy(), dtype="<f4").tofile(folder / f"{config}.scale")
    if zero is not None:
        np.asarray(zero.detach().reshape(-1).float().numpy(), dtype="<f4").tofile(folder / f"{config}.zero")


def torch_dynamic(lin, folder):
    for config, qconfig in [("torch-int8", torch.ao.quantization.default_dynamic_qconfig), ("torch-int8-per-channel", torch.ao.quantization.per_channel_dynamic_qconfig)]:
        model = torch.nn.Sequential(linear_of_copy(lin))
        spec = {torch.nn.Linear} if config == "torch-int8" else {torch.nn.Linear: qconfig}
        q = torch.ao.quantization.quantize_dynamic(model, spec, dtype=torch.qint8)
        w = q[0].weight()
        scale = torch.tensor([w.q_scale()]) if config == "torch-int8" else w.q_per_channel_scales()
        save(folder, config, w.int_repr(), scale)


def quanto(lin, folder):
    from optimum.quanto import freeze, qfloat8, qint2, qint4, qint8, quantize

    for config, qtype in [("quanto-int8", qint8), ("quanto-float8", qfloat8), ("quanto-int4", qint4), ("quanto-int2", qint2)]:
        model = torch.nn.Sequential(linear_of_copy(lin))
        quantize(model, weights=qtype)
        freeze(model)
        w = model[0].weight
        if config == "quanto-int8":
            save(folder, config, w._data, w._scale)
        elif config == "quanto-float8":
            save(folder, config, w._data.view(torch.uint8), w._scale)
        else:
            save(folder, config, w._data.unpack(), w._scale, w._shift)


def hqq(lin, folder):
    from hqq.core.quantize import BaseQuantizeConfig, HQQLinear, Quantizer

    for nbits in [8, 4, 3, 2, 1]:
        layer = HQQLinear(linear_of_copy(lin), BaseQuantizeConfig(nbits=nbits, group_size=64, axis=1), compute_dtype=torch.float32, device="cpu")
        meta = layer.meta
        codes = Quantizer.unpack[meta["packing"]](layer.W_q, dtype=torch.uint8)
        groups = meta["shape"][0] * meta["shape"][1] // meta["group_size"]
        codes = codes[:groups]  # 3-bit packing pads the grouped rows
        save(folder, f"hqq-{nbits}", codes, meta["scale"], meta["zero"])


def bnb(lin, folder):
    import bitsandbytes as bnb_top
    import bitsandbytes.functional as F

    for qt, compute, double in [(qt, c, d) for qt in ["nf4", "fp4"] for c in [torch.float32, torch.float16] for d in [False, True]]:
        layer = bnb_top.nn.Linear4bit(lin.in_features, lin.out_features, bias=lin.bias is not None, compute_dtype=compute, compress_statistics=double, quant_type=qt)
        layer.weight = bnb_top.nn.Params4bit(lin.weight.data.clone(), requires_grad=False, compress_statistics=double, quant_type=qt)
        layer = layer.to("cpu")
        packed = layer.weight.data.reshape(-1).view(torch.uint8)
        codes = torch.stack([packed >> 4, packed & 0xF], dim=1).reshape(-1)[: lin.weight.numel()]
        st = layer.weight.quant_state
        absmax = F.dequantize_blockwise(st.absmax, st.state2) + st.offset if double else st.absmax
        save(folder, f"bnb-{qt}{'-fp16' if compute == torch.float16 else ''}{'-dq' if double else ''}", codes, absmax)
    layer = bnb_top.nn.Linear8bitLt(lin.in_features, lin.out_features, bias=lin.bias is not None, has_fp16_weights=False, threshold=6.0)
    layer.weight = bnb_top.nn.Int8Params(lin.weight.data.clone(), requires_grad=False, has_fp16_weights=False)
    layer = layer.to("cpu")
    save(folder, "bnb-llm-int8", layer.weight.CB, layer.weight.SCB)


def linear_of_copy(lin):
    out = torch.nn.Linear(lin.in_features, lin.out_features, bias=lin.bias is not None)
    with torch.no_grad():
        out.weight.copy_(lin.weight)
        if lin.bias is not None:
            out.bias.copy_(lin.bias)
    return out


def versions():
    import bitsandbytes
    import hqq as hqq_top
    import optimum.quanto as q

    return {"torch": torch.__version__, "optimum-quanto": q.__version__, "hqq": hqq_top.__version__, "bitsandbytes": bitsandbytes.__version__}


def main(model_dir, out):
    model_dir, out = Path(model_dir), Path(out)
    name = model_dir.name
    weights = load_file(model_dir / "model.safetensors")
    torch.manual_seed(0)
    for layer in LAYERS[name]:
        lin = linear_of(weights, layer)
        folder = out / name / layer
        for fn in [torch_dynamic, quanto, hqq, bnb]:
            fn(lin, folder)
        (folder / "config.json").write_text(json.dumps({"model": name, "layer": layer, "shape": list(lin.weight.shape), "versions": versions()}) + "\n")
        print(name, layer, list(lin.weight.shape), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
