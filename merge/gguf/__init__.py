"""HF LlamaForCausalLM checkpoints to GGUF files llama.cpp serves: conversion, vocab, quantization.

Conversion streams row chunks from the memory-mapped checkpoint (via `merge.checkpoint`, the reader the merge
uses), so converting a 34B model needs a few hundred MiB of RAM; quantization is llama.cpp's own.
"""
