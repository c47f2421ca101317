"""Tokenizers built from an in-memory vocabulary, for models made in code.

No file or download is involved: the CLIP and Qwen2 tokenizers map every byte
to one token (byte-level BPE with no merges), the T5 tokenizer is a small unigram
vocabulary of letters, digits and a few whole words, and the Gemma and BERT ones
spell words character by character. They save and load like
any other ``transformers`` tokenizer.
"""

from __future__ import annotations

from tokenizers import AddedToken
from tokenizers.processors import TemplateProcessing
from transformers import BertTokenizer, CLIPTokenizer, GemmaTokenizer, LlamaTokenizer, Qwen2Tokenizer, T5Tokenizer

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


#: Qwen chat and vision markers, added after the byte alphabet as special tokens.
QWEN_SPECIAL_TOKENS = (
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)


def qwen_vl_tokenizer(model_max_length: int = 1024) -> Qwen2Tokenizer:
    """:func:`byte_level_qwen2_tokenizer` with the chat and vision markers as special tokens (ids 257-262),
    as vision-language encoders (Qwen2.5-VL) need them."""
    tokenizer = byte_level_qwen2_tokenizer(model_max_length)
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


def small_llama_tokenizer(model_max_length: int = 4096) -> LlamaTokenizer:
    """A Llama tokenizer over the characters of the T5 one (each a token, with ``▁`` for a space) and byte
    fallback for anything else: ``<unk>``, ``<s>`` (1, starts every text), ``</s>`` (2), 256 bytes and
    43 characters, as OmniGen's processor expects (it drops id 1 from the start of later prompt chunks
    and pads with 2)."""
    vocab = {token: index for index, token in enumerate(("<unk>", "<s>", "</s>"))}
    for byte in range(256):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    for char in "▁" + _T5_CHARS:
        vocab.setdefault(char, len(vocab))
    return LlamaTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)
