#!/usr/bin/env python3
"""Transcribe with a kit recipe's original library, through the entry point the study used, for the
end-to-end parity table (developers only; `node build/tools/parity-e2e.js` compares with the kit).

    python3 tools/reference/library_transcribe.py MODEL_DIR RECIPE LIST OUT.jsonl \
        [--calibration CALIB_LIST] [--perturb 1e-6 --seed K] [--threads 1]

LIST and CALIB_LIST: one "<utterance id> <audio path>" a line, in the kit's manifest order.
The Hugging Face model is loaded in fp32 on the CPU and quantized as the library's users do:
  pytorch/dynamic-int8  torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=qint8)
  pytorch/static-int8   QuantStub -> Linear -> DeQuantStub per nn.Linear, get_default_qconfig("x86"),
                        prepare, greedy decoding of the calibration list, convert
  quanto/w8 w4 w2 wf8   quantize(model, weights=qint8|qint4|qint2|qfloat8); freeze(model)
  quanto/<w>a<a>        quantize(model, weights, activations); Calibration(momentum=0.9) over greedy
                        decoding of the calibration list; freeze(model)
  hqq/N                 every nn.Linear -> HQQLinear(BaseQuantizeConfig(nbits=N, group_size=64, axis=1),
                        compute_dtype=float32, device="cpu"): what transformers' HqqConfig built
  bnb/*                 from_pretrained(quantization_config=BitsAndBytesConfig(...)), device_map="cpu"
Greedy decoding as generate() does it (tools/reference/make_quanto_static_fixture.py's greedy).
--perturb multiplies the input features by (1 + size * N(0, 1)) (seeded): the library's own spread.
Appends one JSON line per utterance ({"id", "tokens", "text"}) and skips ids already in OUT.
"""
import argparse
import json
import os
import sys

import torch
from make_quanto_static_fixture import QTYPES, features_of, greedy
from transformers import WhisperForConditionalGeneration, WhisperProcessor

BNB = {  # kit recipe -> BitsAndBytesConfig arguments
    "bnb/nf4": dict(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32),
    "bnb/fp4": dict(load_in_4bit=True, bnb_4bit_quant_type="fp4", bnb_4bit_compute_dtype=torch.float32),
    "bnb/nf4-dq": dict(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32, bnb_4bit_use_double_quant=True),
    "bnb/nf4-fp16": dict(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float16),
    "bnb/fp4-fp16": dict(load_in_4bit=True, bnb_4bit_quant_type="fp4", bnb_4bit_compute_dtype=torch.float16),
    "bnb/fp4-dq": dict(load_in_4bit=True, bnb_4bit_quant_type="fp4", bnb_4bit_compute_dtype=torch.float32, bnb_4bit_use_double_quant=True),
    "bnb/nf4-fp16-dq": dict(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float16, bnb_4bit_use_double_quant=True),
    "bnb/fp4-fp16-dq": dict(load_in_4bit=True, bnb_4bit_quant_type="fp4", bnb_4bit_compute_dtype=torch.float16, bnb_4bit_use_double_quant=True),
    "bnb/llm-int8": dict(load_in_8bit=True, llm_int8_threshold=6.0),
}


def read_list(path):
    return [line.split(maxsplit=1) for line in open(path).read().splitlines() if line.strip()]


def untie_proj_out(model):
    """The kit quantizes the output projection as its own copy of the token embedding (the embedding stays float)."""
    model.proj_out = torch.nn.Linear(model.proj_out.in_features, model.proj_out.out_features, bias=False)
    model.proj_out.weight = torch.nn.Parameter(model.model.decoder.embed_tokens.weight.detach().clone())


def replace_linears(module, make):
    for name, child in module.named_children():
        if isinstance(child, torch.nn.Linear):
            setattr(module, name, make(child))
        else:
            replace_linears(child, make)


class DequantizedOnce(torch.nn.Module):
    """HQQLinear's PyTorch forward, and quanto's fallback for 2-bit weights (matmul(x, dequantize().t()) + bias),
    with the dequantized weight kept rather than rebuilt on every call: the same arithmetic, without 20M-element
    dequantizations per token."""

    def __init__(self, layer, weight=None):
        super().__init__()
        self.weight_t = (layer.dequantize() if weight is None else weight).t()
        self.bias = layer.bias

    def forward(self, x):
        out = torch.matmul(x, self.weight_t)
        if self.bias is not None:
            out += self.bias
        return out


def load(model_dir, recipe, processor, calibration):
    if recipe.startswith("bnb/"):
        from transformers import BitsAndBytesConfig

        import bitsandbytes as bnb

        model = WhisperForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32, device_map="cpu", quantization_config=BitsAndBytesConfig(**BNB[recipe])).eval()
        # On a CPU with AVX512-BF16, bitsandbytes repacks 4-bit weights at the first forward and
        # computes in bfloat16 (absmax too): a path of that hardware alone. Off, it dequantizes in
        # float32 and multiplies in float32, as on CUDA with compute_dtype float32 and on other CPUs.
        for m in model.modules():
            if isinstance(m, bnb.nn.Linear4bit):
                m.support_avx512bf16_for_cpu = False
        return model
    model = WhisperForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()
    if recipe == "fp32":
        return model
    if recipe == "pytorch/dynamic-int8":
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    if recipe == "pytorch/static-int8":
        from make_torch_static_fixture import Wrapped
        from torch.ao.quantization import convert, get_default_qconfig, prepare

        torch.backends.quantized.engine = "x86"
        untie_proj_out(model)
        replace_linears(model, Wrapped)
        for m in model.modules():
            if isinstance(m, Wrapped):
                m.qconfig = get_default_qconfig("x86")
        prepare(model, inplace=True)
        with torch.no_grad():
            for _, path in calibration:
                greedy(model, features_of(processor, path))
        return convert(model, inplace=True)
    if recipe.startswith("quanto/"):
        from optimum.quanto import Calibration, freeze, qint2, quantize

        qtypes = {**QTYPES, "w2": qint2}
        spec = recipe.split("/")[1]
        weights, _, activations = spec.partition("a")
        if activations:
            quantize(model, weights=qtypes[weights], activations=qtypes["a" + activations])
            with torch.no_grad(), Calibration(momentum=0.9):
                for _, path in calibration:
                    greedy(model, features_of(processor, path))
        else:
            quantize(model, weights=qtypes[weights])
        freeze(model)
        if weights == "w2":
            # quanto has no CPU kernel for 2-bit weights: each call falls back to matmul(x, dequantize().t()) + bias
            # (QuantizedLinearFunction, qfallback); the same arithmetic with the weight dequantized once
            replace_linears(model, lambda lin: DequantizedOnce(lin, lin.qweight.dequantize()))
        return model
    if recipe.startswith("hqq/"):
        from hqq.core.quantize import BaseQuantizeConfig, HQQLinear

        config = BaseQuantizeConfig(nbits=int(recipe.split("/")[1]), group_size=64, axis=1)
        untie_proj_out(model)
        replace_linears(model, lambda lin: DequantizedOnce(HQQLinear(lin, config, compute_dtype=torch.float32, device="cpu")))
        return model
    raise SystemExit(f"unknown recipe {recipe}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("recipe")
    ap.add_argument("list")
    ap.add_argument("out")
    ap.add_argument("--calibration")
    ap.add_argument("--perturb", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    done = set()
    if os.path.exists(args.out):
        done = {json.loads(line)["id"] for line in open(args.out) if line.strip()}
    todo = [u for u in read_list(args.list) if u[0] not in done]
    if not todo:
        return
    processor = WhisperProcessor.from_pretrained(args.model_dir)
    model = load(args.model_dir, args.recipe, processor, read_list(args.calibration) if args.calibration else [])
    order = {u[0]: i for i, u in enumerate(read_list(args.list))}
    with open(args.out, "a") as out, torch.no_grad():
        for uid, path in todo:
            features = features_of(processor, path)
            if args.perturb:  # one generator per utterance, so a resumed run draws the same noise
                generator = torch.Generator().manual_seed(args.seed * 1_000_003 + order[uid])
                features = features * (1 + args.perturb * torch.randn(features.shape, generator=generator))
            tokens = greedy(model, features)
            out.write(json.dumps({"id": uid, "tokens": tokens, "text": processor.decode(tokens)}) + "\n")
            out.flush()
            print(args.recipe, uid, len(tokens), file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
