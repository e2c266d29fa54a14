"""Command line: Hugging Face LLaMA safetensors <-> orca-jax converted checkpoints.

    python -m orca_jax.convert import_hf --hf_dir=HF_DIR --out_dir=OUT [--scan_layers|--no-scan_layers]
        [--add_pad_rows=1] [--dtype=float32] [--preset=llama_13b] [--overwrite]
    python -m orca_jax.convert export_hf --checkpoint=OUT --out_dir=HF_OUT [--vocab_size=32000]
        [--dtype=bfloat16] [--max_shard_size=5GB] [--preset=llama_13b] [--hf_config=config.json]

(also installed as `orca-convert`). The converted layout is described in
orca_jax/convert/checkpoint.py; the trainer's INIT_FROM points at OUT.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from orca_jax.convert import checkpoint as ckpt
from orca_jax.convert import hf_llama


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="orca-convert", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    imp = sub.add_parser("import_hf", help="HF LlamaForCausalLM safetensors -> orca-jax orbax params")
    imp.add_argument("--hf_dir", required=True, help="directory with config.json and *.safetensors")
    imp.add_argument("--out_dir", required=True, help="converted checkpoint directory (local or gs://)")
    imp.add_argument("--scan_layers", action=argparse.BooleanOptionalAction, default=None,
                     help="stacked (scanned) layer params; default: the target config's (True)")
    imp.add_argument("--add_pad_rows", type=int, default=0,
                     help="vocab rows to append (1: LLaMA 32000 -> 32001); initialised to the rows' mean")
    imp.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                     help="dtype of the stored params (param_dtype)")
    imp.add_argument("--preset", default=None, help="check shapes against this model preset, e.g. llama_13b")
    imp.add_argument("--overwrite", action="store_true", help="replace an existing params checkpoint")
    imp.add_argument("--template", default="chatml", help="chat template recorded in model_card.json (chatml, instruct)")

    exp = sub.add_parser("export_hf", help="orca-jax params -> HF LlamaForCausalLM directory")
    exp.add_argument("--checkpoint", required=True,
                     help="converted checkpoint directory (<dir>/params + model_config.json) or an orbax params item")
    exp.add_argument("--out_dir", required=True, help="output directory for config.json + safetensors")
    exp.add_argument("--vocab_size", type=int, default=None, help="keep only the first N vocab rows (drop pad rows)")
    exp.add_argument("--dtype", default="float32", choices=sorted(hf_llama.EXPORT_DTYPES))
    exp.add_argument("--max_shard_size", default="5GB", help="shard past this size (e.g. 5GB, 500MB)")
    exp.add_argument("--preset", default=None,
                     help="model preset for the params' config (default: <checkpoint>/model_config.json)")
    exp.add_argument("--hf_config", default=None,
                     help="config.json supplying token ids etc. (default: <checkpoint>/hf_config.json if any)")
    return p


def _import(args) -> None:
    params, config = hf_llama.import_hf(args.hf_dir, scan_layers=args.scan_layers, add_pad_rows=args.add_pad_rows,
                                        param_dtype=args.dtype, preset=args.preset)
    ckpt.save_converted(args.out_dir, params, config, hf_config=hf_llama.read_hf_config(args.hf_dir),
                        overwrite=args.overwrite)
    from orca_jax.training import model_card  # tokenizer files + model_card.json beside the params
    model_card.write_converted_card(args.hf_dir, args.out_dir, config, args.template)
    print(f"wrote {args.out_dir}/params ({config.num_params():,} params, vocab {config.vocab_size}, "
          f"scan_layers={config.scan_layers}, {config.param_dtype}) and model_config.json")


def _export(args) -> None:
    from orca_jax.models.presets import get_preset

    params = ckpt.load_params(args.checkpoint)
    while "embed" not in params and "params" in params:  # a train state's params subtree
        params = params["params"]
    config = get_preset(args.preset) if args.preset else ckpt.load_model_config(args.checkpoint)
    config = config.replace(scan_layers="layers" in params)
    if args.hf_config:
        with open(args.hf_config) as f:
            base = json.load(f)
    else:
        base = ckpt.load_hf_config(args.checkpoint)
    hf_llama.export_hf(params, config, args.out_dir, vocab_size=args.vocab_size, dtype=args.dtype,
                       max_shard_size=args.max_shard_size, base_hf_config=base)
    vocab = args.vocab_size or config.vocab_size
    tokenizer = _copy_card_tokenizer(args.checkpoint, args.out_dir)
    print(f"wrote {args.out_dir} (config.json + safetensors, {args.dtype}, vocab {vocab}"
          f"{', tokenizer from ' + tokenizer if tokenizer else ''})")


def _copy_card_tokenizer(checkpoint: str, out_dir: str) -> str | None:
    """Copy the tokenizer named by `checkpoint`'s model card into the exported directory, so that
    transformers loads model and tokenizer from one place; returns its path, or None without one."""
    from orca_jax.training import model_card

    card = model_card.load_card(checkpoint)
    path = model_card.card_tokenizer_path(card) if card else None
    if path is None or model_card.copy_tokenizer(path, out_dir) is None:
        return None
    return path


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    try:
        {"import_hf": _import, "export_hf": _export}[args.command](args)
    except (ckpt.ShapeMismatchError, hf_llama.UnsupportedConfigError, FileNotFoundError) as e:
        print(f"orca-convert {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
