"""The vocabulary operations the engine needs, read from an EXL2 folder's `tokenizer.json` and config files.

The engine detokenizes from raw token bytes (so UTF-8 split across tokens streams correctly); ExLlamaV2's own
tokenizer only offers decoded strings, so this reads the same `tokenizer.json` with the `tokenizers` library and
maps each token to bytes the way llama.cpp does: SentencePiece-style vocabularies (`▁` for space, `<0xNN>` byte
fallback pieces) and GPT-2 byte-level ones; special added tokens render as nothing.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from codebooga.merge.shared.files import read_json_object

_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


class VocabError(Exception):
    """The folder's tokenizer or config files are missing or unreadable; one line."""


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's bytes→unicode table used by byte-level BPE vocabularies."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {chr(code): byte for byte, code in zip(printable, codes)}


def _token_ids(value: Any) -> list[int]:
    if isinstance(value, int):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, int)]
    return []


class HfVocabulary:
    """Tokenize, token bytes and special tokens for a model folder with `tokenizer.json`."""

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        path = folder / "tokenizer.json"
        if not path.is_file():
            raise VocabError(f"{folder}: no tokenizer.json (ExLlamaV2 needs one; `codebooga quantize-exl2` writes it)")
        try:
            self._tokenizer = Tokenizer.from_file(str(path))
        except Exception as error:  # tokenizers raises a bare Exception for malformed files
            raise VocabError(f"{path}: not a tokenizers file ({str(error).splitlines()[0][:200]})") from None
        document = read_json_object(path)
        self._byte_level = "ByteLevel" in json.dumps(document.get("decoder"))
        self._special = {entry["id"]: entry["content"] for entry in document.get("added_tokens", []) if entry.get("special")}
        self._added = {entry["id"]: entry["content"] for entry in document.get("added_tokens", [])}
        self.config = read_json_object(folder / "config.json", missing_ok=True)
        self.tokenizer_config = read_json_object(folder / "tokenizer_config.json", missing_ok=True)
        generation = read_json_object(folder / "generation_config.json", missing_ok=True)
        self.n_vocab = max(self._tokenizer.get_vocab_size(with_added_tokens=True), int(self.config.get("vocab_size", 0)))
        self.bos_token_id = self._special_id("bos", generation)
        self.eos_token_id = self._special_id("eos", generation)
        eog = {*_token_ids(self.config.get("eos_token_id")), *_token_ids(generation.get("eos_token_id"))}
        if self.eos_token_id is not None:
            eog.add(self.eos_token_id)
        self.end_of_generation_ids = frozenset(eog)
        self._bytes: dict[int, bytes] = {}

    def _special_id(self, kind: str, generation: dict[str, Any]) -> int | None:
        """config.json's id, else generation_config.json's, else tokenizer_config.json's token looked up."""
        for source in (self.config, generation):
            ids = _token_ids(source.get(f"{kind}_token_id"))
            if ids:
                return ids[0]
        token = self.tokenizer_config.get(f"{kind}_token")
        if isinstance(token, dict):
            token = token.get("content")
        return self._tokenizer.token_to_id(token) if isinstance(token, str) else None

    def tokenize(self, text: str, *, add_special: bool) -> list[int]:
        """Ids with special-token markup parsed; BOS/EOS added by tokenizer.json's post-processor if asked."""
        return self._tokenizer.encode(text, add_special_tokens=add_special).ids

    def token_bytes(self, token_id: int) -> bytes:
        piece = self._bytes.get(token_id)
        if piece is None:
            piece = self._bytes[token_id] = self._piece_bytes(token_id)
        return piece

    def _piece_bytes(self, token_id: int) -> bytes:
        if token_id in self._special:
            return b""
        if token_id in self._added:
            return self._added[token_id].encode("utf-8")
        piece = self._tokenizer.id_to_token(token_id)
        if piece is None:
            return b""
        if self._byte_level:
            decoder = _byte_decoder()
            return bytes(decoder[char] for char in piece if char in decoder)
        match = _BYTE_PIECE.fullmatch(piece)
        if match:
            return bytes([int(match.group(1), 16)])
        return piece.replace("▁", " ").encode("utf-8")

    def longest_token_bytes(self) -> int:
        """The longest piece of text any token stands for, special tokens' markup included."""
        special = (len(content.encode("utf-8")) for content in self._special.values())
        return max(max(len(self.token_bytes(token_id)) for token_id in range(self.n_vocab)), *special, 1)

    def token_text(self, token_id: int | None) -> str:
        """A token's text including special tokens (chat templates' bos/eos variables)."""
        if token_id is None:
            return ""
        return self._tokenizer.id_to_token(token_id) or ""

    def is_end_of_generation(self, token_id: int) -> bool:
        return token_id in self.end_of_generation_ids

    def chat_template(self, folder: Path) -> str | None:
        """tokenizer_config.json's `chat_template` string, else a `chat_template.jinja` file, else None."""
        template = self.tokenizer_config.get("chat_template")
        if isinstance(template, str):
            return template
        path = folder / "chat_template.jinja"
        return path.read_text(encoding="utf-8") if path.is_file() else None
