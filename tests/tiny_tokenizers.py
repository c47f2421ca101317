"""Tokenizers built from an in-memory vocabulary, for models made in code.

No file or download is involved: the CLIP tokenizer maps every byte to one
token (byte-level BPE with no merges) and the T5 tokenizer is a small unigram
vocabulary of letters, digits and a few whole words. They save and load like
any other ``transformers`` tokenizer.
"""

from __future__ import annotations

from tokenizers.processors import TemplateProcessing
from transformers import BertTokenizer, CLIPTokenizer, Qwen2Tokenizer, T5Tokenizer

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


def small_bert_tokenizer(model_max_length: int = 77) -> BertTokenizer:
    """A WordPiece tokenizer that spells words letter by letter (5 specials + 2 ids per character)."""
    vocab = {token: index for index, token in enumerate(("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"))}
    for char in _T5_CHARS:
        vocab[char] = len(vocab)
        vocab["##" + char] = len(vocab)
    return BertTokenizer(vocab=vocab, model_max_length=model_max_length)


#: A Qwen-style chat template (pipelines that format prompts as chat messages need one).
_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def byte_level_qwen2_tokenizer(
    model_max_length: int = 1024, padding_side: str = "right", prefix: str | None = None
) -> Qwen2Tokenizer:
    """A byte-level BPE tokenizer with no merges (one token per byte), ``<|endoftext|>`` pads (257 ids),
    with a Qwen-style chat template.

    ``prefix`` adds a special token before every text (as GLM-4's ``<sop>``), so no text encodes empty.
    """
    vocab = {"<|endoftext|>": 0}
    for char in _byte_alphabet():
        vocab[char] = len(vocab)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[], model_max_length=model_max_length, padding_side=padding_side)
    tokenizer.chat_template = _CHAT_TEMPLATE
    if prefix is not None:
        tokenizer.add_special_tokens({"bos_token": prefix})
        prefix_id = tokenizer.convert_tokens_to_ids(prefix)
        tokenizer._tokenizer.post_processor = TemplateProcessing(
            single=f"{prefix} $A", pair=f"{prefix} $A $B", special_tokens=[(prefix, prefix_id)]
        )
    return tokenizer
