"""Fixtures for the GGUF and EXL2 tests: a real LLaMA-style SentencePiece tokenizer and small random LLaMA
checkpoints. The test folders' conftest.py files import the fixtures they use from here.

Everything is generated in the test session (no downloads), but configured like the real thing: the tokenizer is
trained with LLaMA's SentencePiece settings and the model uses grouped-query attention with a hidden size of 256 so
that llama.cpp's K-quants apply to every matrix.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
sentencepiece = pytest.importorskip("sentencepiece")
pytest.importorskip("llama_cpp")

VOCAB_SIZE = 608  # padded past the tokenizer's pieces, as real checkpoints often are (tests assume 608)
TOKENIZER_PIECES = 600

MODEL_CONFIG = dict(
    hidden_size=256,
    intermediate_size=512,
    num_hidden_layers=2,
    num_attention_heads=8,
    num_key_value_heads=2,
    max_position_embeddings=256,
    rms_norm_eps=1e-5,
    rope_theta=1_000_000.0,
    vocab_size=VOCAB_SIZE,
    bos_token_id=1,
    eos_token_id=2,
    tie_word_embeddings=False,
    initializer_range=0.04,  # large enough that a wrong q/k permutation moves logits by ~0.6
)

TOKENIZER_CONFIG = {
    "add_bos_token": True,
    "add_eos_token": False,
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "tokenizer_class": "LlamaTokenizer",
}

_WORDS = (
    "the model returns a list of tokens for each request and the server streams them back to the client "
    "merge layers gradient blend weights tensor shape float value index count result error message"
).split()
_UNICODE = ["Café naïve résumé", "Größe über alles", "数据 模型 合并", "Ελληνικά κείμενα"]
_CODE = [
    "def {name}(x, y):\n    return x {op} y\n",
    "for i in range({n}):\n\tprint(i, {name}(i, {n}))\n",
    "if __name__ == \"__main__\":\n    main()\n",
    "class {Name}:\n    def __init__(self):\n"
    "        self.value = {n}\n",
    "const {name} = (a, b) => a {op} b;  // {n}\n",
    "SELECT id, {name} FROM items WHERE price > {n};\n",
]


def _corpus(lines: int = 3000) -> list[str]:
    rng = random.Random(1234)
    out = []
    for _ in range(lines):
        name = rng.choice(_WORDS) + "_" + rng.choice(_WORDS)
        values = dict(name=name, Name=name.title().replace("_", ""), n=rng.randint(0, 99999), op=rng.choice("+-*/%"))
        out.append(rng.choice(_CODE).format(**values))
        out.append(" ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 14))).capitalize() + ".")
        out.append(rng.choice(_UNICODE))
    return out


def train_tokenizer(path: Path) -> Path:
    """A BPE SentencePiece model trained with LLaMA's settings (byte fallback, identity normalization, ...)."""
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(_corpus()),
        model_writer=model,
        model_type="bpe",
        vocab_size=TOKENIZER_PIECES,
        byte_fallback=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        split_digits=True,
        add_dummy_prefix=True,
        allow_whitespace_only_pieces=True,
        character_coverage=0.9995,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        max_sentence_length=4096,
        num_threads=1,
        minloglevel=2,
    )
    path.write_bytes(model.getvalue())
    return path


def write_checkpoint(
    folder: Path, tokenizer: Path, seed: int = 0, dtype: str = "float32", fmt: str = "safetensors", **shape: int
) -> Path:
    """A random LLaMA checkpoint folder with the given tokenizer; `shape` overrides MODEL_CONFIG (the GPU benchmark
    makes a bigger body this way)."""
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(**{**MODEL_CONFIG, **shape})
    model = transformers.LlamaForCausalLM(config).to(getattr(torch, dtype)).eval()
    if fmt == "bin":
        config.dtype = dtype
        config.save_pretrained(folder)
        torch.save(model.state_dict(), folder / "pytorch_model.bin")
    else:
        model.save_pretrained(folder)
    (folder / "tokenizer.model").write_bytes(tokenizer.read_bytes())
    (folder / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG))
    return folder


@pytest.fixture(scope="session")
def tokenizer_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tokenizer(tmp_path_factory.mktemp("tokenizer") / "tokenizer.model")


CheckpointFactory = Callable[..., Path]


@pytest.fixture(scope="session")
def make_checkpoint(tmp_path_factory: pytest.TempPathFactory, tokenizer_model: Path) -> CheckpointFactory:
    """Build (once per session) a random LLaMA checkpoint folder: `make_checkpoint(seed, dtype, fmt)`.

    `fmt="bin"` writes a PyTorch `pytorch_model.bin` instead of safetensors, as older checkpoints ship. Callers
    must not modify the folder; copy it first.
    """
    made: dict[tuple[int, str, str], Path] = {}

    def make(seed: int = 0, dtype: str = "float32", fmt: str = "safetensors") -> Path:
        key = (seed, dtype, fmt)
        if key not in made:
            made[key] = write_checkpoint(tmp_path_factory.mktemp(f"llama-s{seed}-{dtype}-{fmt}"), tokenizer_model, *key)
        return made[key]

    return make


@pytest.fixture(scope="session")
def llama_dir(make_checkpoint: CheckpointFactory) -> Path:
    """The float32 safetensors checkpoint most tests convert."""
    return make_checkpoint(seed=0)


@pytest.fixture(scope="session")
def gguf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gguf")


@pytest.fixture(scope="session")
def f32_gguf(llama_dir: Path, gguf_dir: Path) -> Path:
    from codebooga.merge.gguf.convert import convert
    from codebooga.merge.gguf.formats import OutType

    return convert(llama_dir, gguf_dir / "tiny.F32.gguf", OutType.F32, progress=False)


@pytest.fixture(scope="session")
def f16_gguf(llama_dir: Path, gguf_dir: Path) -> Path:
    from codebooga.merge.gguf.convert import convert
    from codebooga.merge.gguf.formats import OutType

    return convert(llama_dir, gguf_dir / "tiny.F16.gguf", OutType.F16, progress=False)


@pytest.fixture(scope="session")
def q4km_gguf(f16_gguf: Path, gguf_dir: Path) -> Path:
    from codebooga.merge.gguf.quantize import quantize

    return quantize(f16_gguf, gguf_dir / "tiny.Q4_K_M.gguf", "Q4_K_M", threads=2, progress=False)


# The operations of the shipped CodeBooga-34B-v0.1 recipe, so the tests exercise the real one.
SEED_RECIPE = Path(__file__).resolve().parents[1] / "merge" / "recipes" / "codebooga-34b-v0.1.yaml"
CODEBOOGA_OPERATIONS = yaml.safe_load(SEED_RECIPE.read_text())["operations"]


@pytest.fixture(scope="session")
def make_recipe(make_checkpoint: CheckpointFactory, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """`make_recipe(name)`: a CodeBooga-shaped recipe over two random parents (f32 + f16) in a fresh folder."""

    def make(name: str) -> Path:
        folder = tmp_path_factory.mktemp("build")
        document = {
            "model_path1": str(make_checkpoint(seed=11)),
            "model_path2": str(make_checkpoint(seed=12, dtype="float16")),
            "output_model_path": str(folder / name),
            "operations": CODEBOOGA_OPERATIONS,
        }
        path = folder / "recipe.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return path

    return make
