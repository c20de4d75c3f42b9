"""What both halves of codebooga need: the CLI error type, model-format detection, and the readers for JSON files
and safetensors headers.

Dependencies point one way: `codebooga.server` builds on `codebooga.merge` (its `codebooga` command dispatches to
merge's subcommands; it serves what merge builds), and nothing under `codebooga.merge` imports the server. So the
pieces both sides use live here, below both, instead of in the server where merge would have to reach up for
them. It is a subpackage of merge rather than of the `codebooga` root because the root is only a namespace over
the project's fixed top-level folders (server/, merge/, prompts/, presets/) and has no folder of its own.

Modules here import nothing from the rest of codebooga except `codebooga.merge.errors` and stay light: no numpy,
torch or llama.cpp at import time, so the serving path and `codebooga --help` pay nothing for them.
"""
