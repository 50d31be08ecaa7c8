"""Entropy coding of integer symbols with integer frequency tables (constriction's ANS).

A :class:`CodingTable` is a categorical distribution over the integers
``offset .. offset + n - 1`` plus one **escape** symbol, stored as integer frequencies that
sum to ``2**PRECISION``. Values outside the table are coded as the escape symbol and then
written verbatim (zigzag varints) in a separate escape stream, so any integer codes
losslessly. Encoder and decoder build the tables from the same float64 probabilities with
the same integer arithmetic, so the coder sees identical integers on both sides.

:func:`encode` / :class:`StreamDecoder` code segments of integers, each integer with the
index of the table it uses, into one ANS stream; within a segment, symbols are grouped by
table (one constriction call per table), in table order and, within a table, in array order.
"""

from __future__ import annotations

import dataclasses

import constriction
import numpy as np

from yoto_tf.compression.container import CorruptFileError

PRECISION = 24
"""log2 of the frequency total (constriction's default ANS coder works at 24 bits)."""

MAX_ABS_SYMBOL = 2**31 - 1
"""Largest magnitude a coded integer may have (the container stores escapes as int64)."""


@dataclasses.dataclass
class CodingTable:
    """Integer frequencies of ``offset .. offset + len(freqs) - 2`` and the escape symbol.

    Attributes:
      offset: the integer that table entry 0 stands for.
      freqs: int64 [n + 1], all >= 1, summing to ``2**PRECISION``; the last is the escape.
      model: the constriction model of these frequencies (built from them).
    """

    offset: int
    freqs: np.ndarray
    model: object = dataclasses.field(init=False, repr=False)

    def __post_init__(self):
        self.model = constriction.stream.model.Categorical(
            self.freqs.astype(np.float64), perfect=False
        )

    @property
    def escape(self) -> int:
        return len(self.freqs) - 1


def make_table(pmf: np.ndarray, offset: int, precision: int = PRECISION) -> CodingTable:
    """Quantizes float64 probabilities of ``offset .. offset + len(pmf) - 1`` to integers.

    The escape symbol gets the remaining mass ``1 - sum(pmf)`` (at least one count).
    Every symbol gets ``1 + floor(p * (total - n - 1))`` counts and the leftover goes to
    the most probable symbol: deterministic integer arithmetic on identical inputs.
    """
    pmf = np.asarray(pmf, dtype=np.float64)
    if pmf.ndim != 1 or pmf.size == 0 or not np.all(np.isfinite(pmf)) or np.any(pmf < 0):
        raise ValueError(f"make_table needs a non-empty finite non-negative pmf, got {pmf!r}")
    total = 1 << precision
    probs = np.append(pmf, max(1.0 - pmf.sum(), 0.0))
    probs = probs / probs.sum()
    if probs.size >= total // 2:
        raise ValueError(f"a table of {probs.size} symbols is too large for {precision}-bit precision")
    freqs = 1 + np.floor(probs * (total - probs.size)).astype(np.int64)
    freqs[np.argmax(freqs)] += total - freqs.sum()
    return CodingTable(int(offset), freqs)


def encode(segments) -> tuple[bytes, list[int]]:
    """Codes segments of integers into ONE ANS stream (one stream's overhead, not several).

    Args:
      segments: ``[(values [n], table_ids [n], tables), ...]``; value ``i`` of a segment is
        coded with ``tables[table_ids[i]]``. A decoder reads the segments in this order, so a
        later segment's tables may depend on an earlier segment's values.

    Returns:
      (the stream as bytes (little-endian 32-bit words), the escaped values in decoding order).
    """
    groups = []
    escapes = []
    for values, table_ids, tables in segments:
        values = np.asarray(values, dtype=np.int64).ravel()
        table_ids = np.asarray(table_ids, dtype=np.int64).ravel()
        if values.shape != table_ids.shape:
            raise ValueError(f"values {values.shape} and table_ids {table_ids.shape} differ in size")
        if values.size and np.abs(values).max() > MAX_ABS_SYMBOL:
            raise ValueError(f"cannot code integers beyond +-{MAX_ABS_SYMBOL}")
        for table_id in np.unique(table_ids):
            table = tables[table_id]
            group = values[table_ids == table_id]
            symbols = group - table.offset
            outside = (symbols < 0) | (symbols >= table.escape)
            escapes.extend(int(v) for v in group[outside])
            symbols[outside] = table.escape
            groups.append((symbols.astype(np.int32), table.model))
    coder = constriction.stream.stack.AnsCoder()
    for symbols, model in reversed(groups):  # a stack: the decoder pops the first group first
        coder.encode_reverse(symbols, model)
    return coder.get_compressed().astype("<u4").tobytes(), escapes


class StreamDecoder:
    """Reads the segments of :func:`encode` back, one :meth:`decode` call per segment.

    Raises (from every method): CorruptFileError when the stream is not a whole number of
    32-bit words, constriction rejects it, the escape stream runs out or has bytes left, or
    the ANS stream holds more data than the symbols need (:meth:`finish`).
    """

    def __init__(self, data: bytes, escapes: bytes):
        if len(data) % 4:
            raise CorruptFileError(f"entropy-coded payload of {len(data)} bytes is not a whole number of 32-bit words")
        try:
            self._coder = constriction.stream.stack.AnsCoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
        except ValueError as err:  # e.g. "ANS compressed data never ends in a zero word"
            raise CorruptFileError(f"entropy-coded payload is invalid: {err}") from None
        self._escapes = EscapeReader(escapes)

    def decode(self, table_ids: np.ndarray, tables: list[CodingTable]) -> np.ndarray:
        """The next segment: int64 values shaped like ``table_ids``."""
        table_ids = np.asarray(table_ids, dtype=np.int64)
        flat_ids = table_ids.ravel()
        values = np.empty(flat_ids.shape, np.int64)
        for table_id in np.unique(flat_ids):
            table = tables[table_id]
            where = flat_ids == table_id
            try:
                symbols = np.asarray(self._coder.decode(table.model, int(where.sum())), dtype=np.int64)
            except ValueError as err:
                raise CorruptFileError(f"entropy-coded payload is invalid: {err}") from None
            group = symbols + table.offset
            escaped = symbols == table.escape
            group[escaped] = self._escapes.read(int(escaped.sum()))
            values[where] = group
        return values.reshape(table_ids.shape)

    def finish(self) -> None:
        """Checks that both streams were consumed exactly."""
        if not self._coder.is_empty():
            raise CorruptFileError("entropy-coded payload has data left over after the last symbol")
        self._escapes.check_consumed()


def write_varints(values: list[int]) -> bytes:
    """Zigzag + LEB128 encoding of signed integers."""
    out = bytearray()
    for value in values:
        v = (value << 1) ^ (value >> 63)  # zigzag: 0, -1, 1, -2, ... -> 0, 1, 2, 3, ...
        v &= (1 << 64) - 1
        while True:
            byte = v & 0x7F
            v >>= 7
            if v:
                out.append(byte | 0x80)
            else:
                out.append(byte)
                break
    return bytes(out)


class EscapeReader:
    """Reads the zigzag varints of :func:`write_varints` back, with bounds checks."""

    MAX_VARINT_BYTES = 10

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def read(self, count: int) -> np.ndarray:
        out = np.empty(count, np.int64)
        for i in range(count):
            v, shift = 0, 0
            for _ in range(self.MAX_VARINT_BYTES):
                if self.pos >= len(self.data):
                    raise CorruptFileError("escape payload ends in the middle of the data")
                byte = self.data[self.pos]
                self.pos += 1
                v |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            else:
                raise CorruptFileError("escape payload holds a malformed number")
            value = (v >> 1) ^ -(v & 1)
            if abs(value) > MAX_ABS_SYMBOL:
                raise CorruptFileError("escape payload holds an out-of-range number")
            out[i] = value
        return out

    def check_consumed(self) -> None:
        if self.pos != len(self.data):
            raise CorruptFileError(
                f"escape payload has {len(self.data) - self.pos} unused bytes after the last value"
            )
