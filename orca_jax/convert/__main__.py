"""Command line: Hugging Face LLaMA safetensors <-> orca-jax converted checkpoints.

    python -m orca_jax.convert import_hf --hf_dir=HF_DIR --out_dir=OUT [--scan_layers|--no-scan_layers]
        [--add_pad_rows=1] [--dtype=float32] [--preset=llama_13b] [--overwrite]
    python -m orca_jax.convert export_hf --checkpoint=OUT --out_dir=HF_OUT [--vocab_size=32000]
        [--dtype=bfloat16] [--max_shard_size=5GB] [--preset=llama_13b] [--hf_config=config.json]

(also installed as `orca-convert`). The converted layout is described in
orca_jax/training/checkpoints.py; the trainer's INIT_FROM points at OUT. Both directions write
a model_card.json (orca_jax/training/model_card.py) beside the weights, with the tokenizer
files: import records the chat template given by --template, else the one in HF_DIR's own
model card (an export of ours), else chatml; export carries over the checkpoint's card.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from etils import epath

from orca_jax.convert import hf_llama
from orca_jax.training import checkpoints as ckpt
from orca_jax.training import model_card


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="orca-convert", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    imp = sub.add_parser("import_hf", help="HF LlamaForCausalLM safetensors -> orca-jax orbax params")
    imp.add_argument("--hf_dir", required=True, help="directory with config.json and *.safetensors")
    imp.add_argument("--out_dir", required=True, help="converted checkpoint directory (local or gs://)")
    imp.add_argument(
        "--scan_layers",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="stacked (scanned) layer params; default: the target config's (True)",
    )
    imp.add_argument(
        "--add_pad_rows",
        type=int,
        default=0,
        help="vocab rows to append (1: LLaMA 32000 -> 32001); initialised to the rows' mean",
    )
    imp.add_argument(
        "--dtype", default="float32", choices=["float32", "bfloat16"], help="dtype of the stored params (param_dtype)"
    )
    imp.add_argument("--preset", default=None, help="check shapes against this model preset, e.g. llama_13b")
    imp.add_argument("--overwrite", action="store_true", help="replace an existing params checkpoint")
    imp.add_argument(
        "--template",
        default=None,
        help="chat template recorded in model_card.json (chatml, instruct); default: the one in "
        "HF_DIR/model_card.json, else chatml",
    )

    exp = sub.add_parser("export_hf", help="orca-jax params -> HF LlamaForCausalLM directory")
    exp.add_argument(
        "--checkpoint",
        required=True,
        help="converted, stage run or step directory, or an orbax params item (then pass --preset)",
    )
    exp.add_argument("--out_dir", required=True, help="output directory for config.json + safetensors")
    exp.add_argument("--vocab_size", type=int, default=None, help="keep only the first N vocab rows (drop pad rows)")
    exp.add_argument("--dtype", default="float32", choices=sorted(hf_llama.EXPORT_DTYPES))
    exp.add_argument("--max_shard_size", default="5GB", help="shard past this size (e.g. 5GB, 500MB)")
    exp.add_argument(
        "--preset", default=None, help="model preset for the params' config (default: <checkpoint>/model_config.json)"
    )
    exp.add_argument(
        "--hf_config",
        default=None,
        help="config.json supplying token ids etc. (default: <checkpoint>/hf_config.json if any)",
    )
    return p


def _import(args) -> None:
    params, config = hf_llama.import_hf(
        args.hf_dir,
        scan_layers=args.scan_layers,
        add_pad_rows=args.add_pad_rows,
        param_dtype=args.dtype,
        preset=args.preset,
    )
    template = _import_template(args.hf_dir, args.template)
    card = model_card.copied_card(args.hf_dir, args.out_dir, config, template, created_by="orca_jax.convert import_hf")
    ckpt.save_converted(
        args.out_dir, params, config, card, hf_config=hf_llama.read_hf_config(args.hf_dir), overwrite=args.overwrite
    )
    print(
        f"wrote {args.out_dir}/params ({config.num_params():,} params, vocab {config.vocab_size}, "
        f"scan_layers={config.scan_layers}, {config.param_dtype}), model_config.json and model_card.json "
        f"(template {template['name']})"
    )


def _import_template(hf_dir: str, template: str | None) -> dict:
    """The model card's chat_template entry for an import: `template` if given, else the one in
    HF_DIR's own model card (an export of ours; a parent directory's card does not count), else chatml."""
    if template is None and (epath.Path(hf_dir) / model_card.MODEL_CARD_FILE).exists():
        recorded = model_card.load_card(hf_dir)["chat_template"]
        if recorded:
            return recorded
    return model_card.template_record(template or "chatml", omit_empty_system=True)


def _export(args) -> None:
    from orca_jax.models.presets import get_preset

    params = ckpt.load_host_params(args.checkpoint)
    config = get_preset(args.preset) if args.preset else ckpt.load_model_config(args.checkpoint)
    if config is None:
        raise FileNotFoundError(f"no {ckpt.MODEL_CONFIG_FILE} recorded with {args.checkpoint}; pass --preset")
    config = config.replace(scan_layers="layers" in params)
    if args.hf_config:
        with open(args.hf_config) as f:
            base = json.load(f)
    else:
        base = ckpt.load_hf_config(args.checkpoint)
    hf_llama.export_hf(
        params,
        config,
        args.out_dir,
        vocab_size=args.vocab_size,
        dtype=args.dtype,
        max_shard_size=args.max_shard_size,
        base_hf_config=base,
    )
    vocab = args.vocab_size or config.vocab_size
    source = model_card.load_card(args.checkpoint) or {}
    tokenizer = model_card.card_tokenizer_path(source) if source else None
    card = model_card.copied_card(
        tokenizer,
        args.out_dir,
        config.replace(vocab_size=vocab),
        source.get("chat_template"),
        created_by="orca_jax.convert export_hf",
    )
    model_card.save_card(args.out_dir, card)
    print(
        f"wrote {args.out_dir} (config.json + safetensors, {args.dtype}, vocab {vocab}; model_card.json"
        f"{', tokenizer from ' + tokenizer if card['tokenizer'] else ''})"
    )


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
