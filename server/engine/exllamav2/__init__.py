"""ExLlamaV2 backend for EXL2-quantized models (CUDA only, optional `exl2` extra).

Only `backend`, `model` and `scheduler` touch exllamav2/torch, and only the loader imports them, after
`codebooga.merge.shared.exl2_support.missing_exl2_requirement()` said they can work. `vocab` and `sampling` are
plain Python so they are tested on machines without a GPU.
"""
