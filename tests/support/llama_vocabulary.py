"""The real Llama-2 vocabulary for the tests, from the npm package ``llama-tokenizer-js@1.2.2``.

Nothing fetched is committed to this repository, so the vocabulary comes from a package registry:
``make test`` runs ``npm pack llama-tokenizer-js@1.2.2`` into ``.venv/npm/`` (git-ignored). The
package (code MIT-licensed; the vocabulary is Meta's Llama vocabulary under Meta's licence) embeds
``llama_vocab_base64`` -- the 32,000 pieces in id order joined by "\\n", base64 -- and
``llama_merges_binary`` -- the merges as little-endian uint16 pairs of piece ids, in priority order,
base64 (see its ``data-conversion.py``). :func:`load_llama_vocabulary` decodes both from the tarball
without unpacking it; a fixture turns them into llava-hf's tokenizer files.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import struct
import tarfile
from functools import cache
from pathlib import Path

from tests.support.tiny_checkpoints import LlamaVocabulary

PACKAGE = "llama-tokenizer-js@1.2.2"
TARBALL_ENV = "ADAPTVIS_LLAMA_TOKENIZER_JS"
DEFAULT_TARBALL = Path(__file__).resolve().parents[2] / ".venv" / "npm" / "llama-tokenizer-js-1.2.2.tgz"
PIECES_SHA256 = "0f97b4337921e6e7e9b4620fc73338ee570aecd3c16038bc23870a887e995045"
"""sha256 of the 32,000 decoded pieces joined by "\\n" (pins the vocabulary, not the package bytes)."""


def tarball_path() -> Path:
    """``$ADAPTVIS_LLAMA_TOKENIZER_JS`` or ``.venv/npm/llama-tokenizer-js-1.2.2.tgz``."""
    return Path(os.environ.get(TARBALL_ENV) or DEFAULT_TARBALL)


def _embedded_string(source: str, name: str, path: Path) -> str:
    match = re.search(rf'const {name} = "([A-Za-z0-9+/=]*)"', source)
    if match is None:
        raise RuntimeError(f'{path}: package/llama-tokenizer.js has no `const {name} = "..."`; is it {PACKAGE}?')
    return match.group(1)


@cache
def load_llama_vocabulary() -> LlamaVocabulary:
    """Decode pieces and merges from the npm tarball; a clear error says how to get it when it is absent."""
    path = tarball_path()
    if not path.is_file():
        raise RuntimeError(
            f"the Llama vocabulary for the token-id tests is missing: {path} does not exist. Run `make test` "
            f"(it fetches it), or `mkdir -p .venv/npm && cd .venv/npm && npm pack {PACKAGE}`, or point "
            f"{TARBALL_ENV} at that tarball"
        )
    with tarfile.open(path) as archive:
        member = archive.extractfile("package/llama-tokenizer.js")
        if member is None:
            raise RuntimeError(f"{path} has no package/llama-tokenizer.js; expected the npm tarball of {PACKAGE}")
        source = member.read().decode("utf-8")
    joined = base64.b64decode(_embedded_string(source, "llama_vocab_base64", path)).decode("utf-8")
    digest = hashlib.sha256(joined.encode("utf-8")).hexdigest()
    if digest != PIECES_SHA256:
        raise RuntimeError(f"{path}: the decoded vocabulary has sha256 {digest}, not the pinned {PIECES_SHA256}")
    pieces = tuple(joined.split("\n"))
    raw = base64.b64decode(_embedded_string(source, "llama_merges_binary", path))
    ids = struct.unpack(f"<{len(raw) // 2}H", raw)
    merges = tuple((pieces[ids[i]], pieces[ids[i + 1]]) for i in range(0, len(ids), 2))
    return LlamaVocabulary(pieces=pieces, merges=merges)
