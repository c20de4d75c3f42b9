"""HF LlamaForCausalLM checkpoints to GGUF files llama.cpp serves: conversion, vocab, quantization.

Everything here streams tensor by tensor so that converting a 34B model needs about one tensor's worth of RAM,
and nothing imports torch: the checkpoint reader in `merge.checkpoint` hands over numpy arrays.
"""
