"""llama.cpp backend over llama-cpp-python's low-level API: one context, parallel sequences, native samplers."""
