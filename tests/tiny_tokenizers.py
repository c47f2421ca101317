"""Tokenizers built from an in-memory vocabulary, for models made in code.

No file or download is involved: the CLIP and Qwen2 tokenizers map every byte
to one token (byte-level BPE with no merges) and the T5 tokenizer is a small unigram
vocabulary of letters, digits and a few whole words. They save and load like
any other ``transformers`` tokenizer.
"""

from __future__ import annotations

from tokenizers import AddedToken
from transformers import CLIPTokenizer, GemmaTokenizer, Qwen2Tokenizer, T5Tokenizer

_T5_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789.,!?'-"
_T5_WORDS = ("a", "an", "the", "of", "on", "in", "with", "and", "cat", "dog", "photo", "painting")


def _byte_alphabet() -> list[str]:
    """The GPT-2/CLIP byte-to-unicode table: one printable character per byte value."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(code) for code in codes]


def byte_level_clip_tokenizer(model_max_length: int = 77) -> CLIPTokenizer:
    """A CLIP tokenizer with one token per byte (514 ids: 2 specials, 256 bytes, 256 word-final bytes)."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    alphabet = _byte_alphabet()
    for char in alphabet:
        vocab[char] = len(vocab)
    for char in alphabet:
        vocab[char + "</w>"] = len(vocab)
    # model_max_length must be set: Flux pads CLIP input to it.
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


def small_t5_tokenizer(model_max_length: int = 512) -> T5Tokenizer:
    """A unigram T5 tokenizer over lowercase letters, digits, punctuation and a few words (< 120 ids)."""
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    for char in _T5_CHARS:
        vocab += [(char, -3.0), ("▁" + char, -3.5)]
    vocab += [("▁" + word, -1.0) for word in _T5_WORDS]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=model_max_length)


#: Qwen chat and vision markers, added after the byte alphabet as special tokens.
QWEN_SPECIAL_TOKENS = (
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)


def byte_level_qwen2_tokenizer(model_max_length: int = 1024) -> Qwen2Tokenizer:
    """A Qwen2 tokenizer with one token per byte (ids 1-256), ``<|endoftext|>`` = 0, then the chat and
    vision markers (ids 257-262) as special tokens."""
    vocab = {"<|endoftext|>": 0}
    for char in _byte_alphabet():
        vocab[char] = len(vocab)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)
    tokenizer.add_tokens([AddedToken(token, special=True) for token in QWEN_SPECIAL_TOKENS])
    return tokenizer


def small_gemma_tokenizer(model_max_length: int = 512) -> GemmaTokenizer:
    """A Gemma tokenizer over the characters of the T5 one (each a token, with ``▁`` for a space) and byte
    fallback for anything else: 5 specials + 256 bytes + 43 characters; every text starts with ``<bos>``."""
    vocab = {token: index for index, token in enumerate(("<pad>", "<eos>", "<bos>", "<unk>", "<mask>"))}
    for byte in range(256):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    for char in "▁" + _T5_CHARS:
        vocab.setdefault(char, len(vocab))
    # Like Gemma's own, it starts every text with <bos>: an empty negative prompt still has a token to attend to.
    return GemmaTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length, add_bos_token=True)


#: A minimal ChatML template: what Qwen3-based pipelines (Z-Image, FLUX.2 Klein) render prompts with.
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def chat_qwen2_tokenizer(model_max_length: int = 1024) -> Qwen2Tokenizer:
    """:func:`byte_level_qwen2_tokenizer` with :data:`CHATML_TEMPLATE` as its chat template."""
    tokenizer = byte_level_qwen2_tokenizer(model_max_length)
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer
