"""The GGUF tests' fixtures, shared with the EXL2 tests in `llama_checkpoints`."""

from llama_checkpoints import (  # noqa: F401  (fixtures are found by name)
    f16_gguf,
    f32_gguf,
    gguf_dir,
    llama_dir,
    make_checkpoint,
    make_recipe,
    q4km_gguf,
    tokenizer_model,
)
