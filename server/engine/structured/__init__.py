"""Constrained generation: JSON schemas and tool calls turned into GBNF grammars for llama.cpp's sampler."""
