"""Build step 1: reproduce a BlockMerge Gradient merge exactly, streaming at constant memory.

The package is split by job: `recipe` (YAML → validated recipe), `hub` (hub id → local folder),
`checkpoint` (read Hugging Face weight folders lazily), `plan` (which tensor gets which blends),
`engine` (row-chunked float32 arithmetic), `writer` (sharded safetensors written into a staging folder),
`report` (dry-run table) and `cli` (the `codebooga merge` subcommand); `recipes` holds the shipped recipes and
`shared` what the server uses too. Importing the package is cheap: nothing here imports torch at module import
time, and nothing here imports `codebooga.server`.
"""
