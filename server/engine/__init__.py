"""The generation engine: backend-agnostic text generation with streaming events.

Data flow: a `GenerationRequest` (prompt token ids + sampling) goes to `Engine.generate`, which hands a
`BackendJob` to a `Backend` (llama.cpp, ExLlamaV2). The backend streams sampled token ids; the engine turns
them into text deltas (UTF-8 safe, stop strings held back and removed), logprobs, finish reasons and usage.
Nothing here knows about HTTP.
"""
