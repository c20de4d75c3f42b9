"""ExLlamaV2 backend for EXL2-quantized models (CUDA only, optional `exl2` extra).

Only `backend`, `model` and `scheduler` touch exllamav2/torch, and only the loader imports them, after
`availability.missing_requirement()` said they can work. `vocab`, `sampling` and `availability` are plain Python
so they are tested on machines without a GPU.
"""
