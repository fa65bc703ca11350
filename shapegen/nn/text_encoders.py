"""Frozen text encoders for text-conditioned generation.

A text encoder turns a list of prompts into token states (``B L E``), a padding mask and a
pooled vector. Three are provided, with the same interface:

- ``CLIPTextEncoder.from_pretrained(hub id or local folder)``: a real CLIP text model and its
  tokenizer through ``transformers`` (e.g. ``openai/clip-vit-base-patch32``, 512 wide).
- ``"tiny"``: a real ``CLIPTextModel`` built from a small ``CLIPTextConfig`` with seeded random
  weights and a word-hashing tokenizer, needing no download: for tests and CPU smoke runs. The
  same name always rebuilds the same weights, so a checkpoint does not need to store them.
- ``"words"``: :class:`HashWordEncoder`, no weights at all: every word gets a fixed pseudo-random
  vector seeded by its CRC32 and mixed with its neighbours' by two fixed projections. Made for
  models trained from scratch on a small captioned set (the Mosaic-SDF text demo): unlike the
  tiny CLIP's 1000-entry hash vocabulary, two different words never share a vector, and
  punctuation is not part of a word ("table," and "table" are the same token).

``transformers`` is imported lazily; ``build_text_encoder`` turns every loading problem into a
one-line :class:`~shapegen.errors.ShapegenError`.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float
from torch import Tensor, nn

from shapegen.errors import ShapegenError

TINY = "tiny"
"""Name of the download-free stand-in encoder."""
WORDS = "words"
"""Name of the weight-free hashed word-vector encoder (:class:`HashWordEncoder`)."""


@dataclass
class TextEncoding:
    """Output of a text encoder."""

    hidden: Float[Tensor, "B L E"]
    """Last hidden states of every token."""
    mask: Bool[Tensor, "B L"]
    """True for real tokens, False for padding."""
    pooled: Float[Tensor, "B E"]
    """The model's pooled (end-of-text) state."""


class HashTokenizer:
    """Download-free tokenizer stand-in: lower-cased words hashed (CRC32) into a small vocabulary.

    Output mirrors a Hugging Face tokenizer called with ``padding=True, return_tensors="pt"``:
    ``input_ids`` ``[BOS, words..., EOS, PAD...]`` and ``attention_mask``.
    """

    def __init__(self, vocab_size: int, max_length: int) -> None:
        self.vocab_size, self.max_length = vocab_size, max_length
        self.bos, self.eos, self.pad = 0, vocab_size - 1, vocab_size - 2

    def __call__(self, prompts: list[str]) -> dict[str, Tensor]:
        rows = []
        for p in prompts:
            words = [1 + zlib.crc32(w.encode()) % (self.vocab_size - 3) for w in p.lower().split()]
            rows.append([self.bos, *words[: self.max_length - 2], self.eos])
        length = max(len(r) for r in rows)
        ids = torch.full((len(rows), length), self.pad, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        return {"input_ids": ids, "attention_mask": mask}


class CLIPTextEncoder(nn.Module):
    """A frozen ``transformers.CLIPTextModel`` with its tokenizer.

    Args:
        model: the CLIP text model (put in eval mode and frozen).
        tokenizer: a callable mapping a list of prompts to ``input_ids`` and ``attention_mask``
            tensors (a Hugging Face tokenizer or :class:`HashTokenizer`).
        name: the hub id, folder or ``"tiny"`` it was built from.
    """

    def __init__(self, model: nn.Module, tokenizer, name: str) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.name = name

    @property
    def dim(self) -> int:
        """Width ``E`` of the token states."""
        return int(self.model.config.hidden_size)

    @classmethod
    def from_pretrained(cls, name_or_path: str) -> CLIPTextEncoder:
        """Load a CLIP text model and tokenizer from a hub id or a local folder.

        Raises:
            ShapegenError: when ``transformers`` is missing or the model cannot be loaded.
        """
        try:
            from transformers import CLIPTextModel, CLIPTokenizer
        except ImportError as exc:
            raise ShapegenError("text conditioning needs transformers: pip install -e .[diffusion]") from exc
        try:
            tokenizer = CLIPTokenizer.from_pretrained(name_or_path)
            model = CLIPTextModel.from_pretrained(name_or_path)
        except Exception as exc:
            raise ShapegenError(
                f"cannot load text encoder '{name_or_path}' ({type(exc).__name__}); pass a Hugging Face hub id of a CLIP model "
                "(e.g. openai/clip-vit-base-patch32, downloaded once with network access) or a local folder holding its "
                "config.json, weights and tokenizer files, or use text_encoder=tiny for tests"
            ) from exc
        return cls(model, _TokenizerAdapter(tokenizer), name_or_path)

    @classmethod
    def tiny(cls, seed: int = 0) -> CLIPTextEncoder:
        """A 2-layer, 32-wide ``CLIPTextModel`` with seeded random weights and :class:`HashTokenizer`."""
        from transformers import CLIPTextConfig, CLIPTextModel

        config = CLIPTextConfig(
            vocab_size=1000, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            max_position_embeddings=32, bos_token_id=0, eos_token_id=999, pad_token_id=998,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = CLIPTextModel(config)
        return cls(model, HashTokenizer(config.vocab_size, config.max_position_embeddings), TINY)

    @torch.no_grad()
    def forward(self, prompts: list[str]) -> TextEncoding:
        """Encode prompts on the device of the model's weights."""
        device = next(self.model.parameters()).device
        tokens = self.tokenizer(list(prompts))
        ids, mask = tokens["input_ids"].to(device), tokens["attention_mask"].to(device)
        out = self.model(input_ids=ids, attention_mask=mask)
        return TextEncoding(hidden=out.last_hidden_state.float(), mask=mask.bool(), pooled=out.pooler_output.float())


def split_words(prompt: str) -> list[str]:
    """Lower-cased words of a prompt: runs of letters and digits, hyphenated words kept whole."""
    return re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*", prompt.lower())


class HashWordEncoder(nn.Module):
    """Weight-free text encoder: hashed word vectors with their neighbours mixed in.

    Token ``i`` of a prompt with words ``w_1..w_L`` gets
    ``h_i = e(w_i) + A e(w_{i-1}) + B e(w_{i+1})`` with ``e(w)`` a standard-normal vector drawn
    from a generator seeded by ``CRC32(w)`` (so any word, known or not, has its own vector and
    needs no table) and ``A``, ``B`` fixed random orthogonal maps scaled by 1/2, so that a
    model can tell "round legs" from "round top" from the token states alone. A start token
    comes first, so an empty prompt still has one state. Nothing is learned here: the
    conditioned model learns to read these states (its context projection and cross-attention).

    Args:
        dim: width ``E`` of the token vectors.
        max_words: words kept per prompt (the rest is dropped).
    """

    START = "<start>"

    def __init__(self, dim: int = 64, max_words: int = 30) -> None:
        super().__init__()
        self.max_words = max_words
        self.name = WORDS
        gen = torch.Generator().manual_seed(0)
        mix = torch.linalg.qr(torch.randn(2, dim, dim, generator=gen)).Q * 0.5
        # Frozen and rebuilt from the seed: a parameter only so that callers can read its device.
        self.mix = nn.Parameter(mix, requires_grad=False)
        self._cache: dict[str, Tensor] = {}

    @property
    def dim(self) -> int:
        """Width ``E`` of the token states."""
        return int(self.mix.shape[-1])

    def word_vector(self, word: str) -> Float[Tensor, " E"]:
        """The fixed vector ``e(word)`` (on the CPU)."""
        if word not in self._cache:
            gen = torch.Generator().manual_seed(zlib.crc32(word.encode()))
            self._cache[word] = torch.randn(self.dim, generator=gen)
        return self._cache[word]

    @torch.no_grad()
    def forward(self, prompts: list[str]) -> TextEncoding:
        """Encode prompts on the device of :attr:`mix`."""
        rows = [[self.START, *split_words(p)[: self.max_words]] for p in prompts]
        length = max(len(r) for r in rows)
        e = torch.zeros(len(rows), length + 2, self.dim)  # one zero pad each side for the neighbours
        mask = torch.zeros(len(rows), length, dtype=torch.bool)
        for i, r in enumerate(rows):
            e[i, 1 : 1 + len(r)] = torch.stack([self.word_vector(w) for w in r])
            mask[i, : len(r)] = True
        e = e.to(self.mix.device)
        hidden = e[:, 1:-1] + e[:, :-2] @ self.mix[0] + e[:, 2:] @ self.mix[1]
        hidden = hidden * mask.to(hidden.device)[..., None]
        mask = mask.to(hidden.device)
        pooled = hidden.sum(1) / mask.sum(1, keepdim=True)
        return TextEncoding(hidden=hidden, mask=mask, pooled=pooled)


class _TokenizerAdapter:
    """Calls a Hugging Face tokenizer with padding and truncation, returning tensors."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer

    def __call__(self, prompts: list[str]) -> dict[str, Tensor]:
        out = self.tokenizer(prompts, padding=True, truncation=True, return_tensors="pt")
        return {"input_ids": out["input_ids"], "attention_mask": out["attention_mask"]}


def build_text_encoder(name: str) -> CLIPTextEncoder | HashWordEncoder:
    """``"tiny"`` -> the download-free CLIP stand-in; ``"words"`` -> :class:`HashWordEncoder`;
    anything else -> ``CLIPTextEncoder.from_pretrained``."""
    if name == TINY:
        return CLIPTextEncoder.tiny()
    if name == WORDS:
        return HashWordEncoder()
    return CLIPTextEncoder.from_pretrained(name)


__all__ = ["TINY", "WORDS", "CLIPTextEncoder", "HashTokenizer", "HashWordEncoder", "TextEncoding", "build_text_encoder", "split_words"]
