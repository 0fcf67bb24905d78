"""Template-forced decoding of the output contract (see :mod:`semanticface.decoding.forced`)."""

from semanticface.decoding.forced import ForcedDecodeResult, RowStats, SlotMaskLogitsProcessor, forced_generate
from semanticface.decoding.numbers import NumberGrammar, number_strings
from semanticface.decoding.vocab import TokenTable, token_table

__all__ = [
    "ForcedDecodeResult",
    "NumberGrammar",
    "RowStats",
    "SlotMaskLogitsProcessor",
    "TokenTable",
    "forced_generate",
    "number_strings",
    "token_table",
]
