"""`toolbench train tokenizer`: a byte-level BPE over tool data plus the generic corpus, saved as an
ordinary `PreTrainedTokenizerFast` folder with a chat template that supports `tools` and
`tool_calls`.

Pre-tokenised for copying: a value must be the same tokens in the request and in the call, or a
model has to learn, token by token, that " Charlotte" (after a space, in the request) is
"Charlotte" (after a quote, in the call) before it can copy anything. So words never carry their
leading space (every whitespace character is its own piece), punctuation is one piece per
character (no merges across quotes, commas or colons), and digits stand alone ("1450" is four
tokens, as in the request's "$1,450"). Identifiers keep their underscores (function and argument
names stay whole). Costs ~40% more tokens per conversation than GPT-2-style pieces.
`<tool_call>`/`</tool_call>` are added tokens but *not* special ones, so decoding with
`skip_special_tokens=True` keeps them and the chat-native parser still sees the calls.
"""

from __future__ import annotations

import random
from importlib.resources import files
from pathlib import Path

from pydantic import BaseModel, Field

USER_TURN = "<|user|>"  # starts a user turn: where a position skip may go (positions.py)
ROLE_TOKENS = ["<|system|>", USER_TURN, "<|assistant|>", "<|tool|>"]
PAD, BOS, END = "<pad>", "<s>", "<|end|>"
SPECIAL_TOKENS = [PAD, BOS, END, *ROLE_TOKENS]
CALL_TAGS = ["<tool_call>", "</tool_call>"]
# Pre-token pieces (see the module doc): a word (letters and underscores) without its leading space,
# one digit, one punctuation character, one whitespace character.
WORDS = r"[^\W\d]+|\d|[^\s\w]|\s"


def chat_template() -> str:
    return files("toolbench.distill.training").joinpath("chat_template.jinja").read_text(encoding="utf-8")


class TokenizerConfig(BaseModel):
    vocab_size: int = Field(4096, ge=len(SPECIAL_TOKENS) + 256 + 2)
    samples_per_tool: int = Field(2000, ge=0, description="Generated samples per tool in the corpus.")
    tools: list[str] | None = Field(None, description="Tools whose data is in the corpus; default: all.")
    generic_documents: int | None = Field(None, description="Cap on generic documents (tests).")
    seed: int = 0


def train_tokenizer(config: TokenizerConfig, out: Path, cache_dir: Path):
    """Train, save to `out` (atomically, via a sibling temp folder) and return the tokenizer."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from toolbench.distill.training.corpus import generic_corpus, tool_documents
    from toolbench.distill.training.models import save_tokenizer
    from toolbench.foundation.io import atomic_dir

    generic = generic_corpus(cache_dir)
    if config.generic_documents is not None:
        generic = generic[: config.generic_documents]
    tool_text = list(tool_documents(config.samples_per_tool, config.seed, config.tools))
    documents = generic + tool_text
    random.Random(config.seed).shuffle(documents)

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(WORDS), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=config.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(documents, trainer)
    bpe.add_tokens(CALL_TAGS)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=BOS,
        eos_token=END,
        pad_token=PAD,
        additional_special_tokens=ROLE_TOKENS,
        chat_template=chat_template(),
        model_max_length=2048,
    )
    with atomic_dir(Path(out)) as tmp:
        save_tokenizer(tokenizer, tmp)
    return tokenizer
