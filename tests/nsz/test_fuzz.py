"""Thousands of damaged ``.nsz`` files: each must load or fail with one ``NetshrinkError``.

Hypothesis draws every choice of each damage kind of ``fuzz_corpus`` (where to cut, which
bit to flip, which header value to set to what...), 430 files per kind (5,160 in all), and
feeds each to every reader entry point (``fuzz_corpus.exercise``). The runs are
deterministic (``derandomize``, no example database); ``benchmarks/bench_fuzz.py`` runs
100,000 files and times them.
"""

from __future__ import annotations

import tracemalloc

import fuzz_corpus as corpus
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netshrink.errors import NetshrinkError
from netshrink.nsz.container import MAX_HEADER_BYTES, MAX_MESSAGE, read_sections

EXAMPLES_PER_DAMAGE = 430
FUZZ = settings(
    max_examples=EXAMPLES_PER_DAMAGE,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _must_fail_cleanly(data: bytes, kind: str) -> None:
    try:
        corpus.exercise(data, kind)
    except NetshrinkError as exc:
        message = str(exc)
        assert "\n" not in message and 0 < len(message) <= MAX_MESSAGE, message[:200]


@pytest.mark.parametrize("kind", corpus.FILES)
def test_the_corpus_loads_and_rewriting_its_header_keeps_it_valid(kind):
    data = corpus.corpus_file(kind)
    corpus.exercise(data, kind)
    corpus.exercise(corpus.with_header(data, corpus.header(data)), kind)
    assert corpus.fix_checksums(data) == data


@pytest.mark.parametrize("damage", sorted(corpus.DAMAGES))
def test_every_damaged_file_loads_or_fails_with_one_line(damage):
    @FUZZ
    @given(kind=st.sampled_from(corpus.FILES), data=st.data())
    def check(kind, data):
        damaged = corpus.DAMAGES[damage](corpus.corpus_file(kind), corpus.DrawPicker(data))
        _must_fail_cleanly(damaged, kind)

    check()


# Before a section's checksum is verified nothing is allocated from it: the container holds
# views of the file and, per verified section, a few small objects (about 290 bytes; a
# section takes at least 16 bytes of the file).
CONTAINER_MULTIPLE = 20
CONTAINER_ALLOWANCE = 4096
# After its checksum, the header inflates to at most 64 MiB; that and its parse are bounded
# absolutely (docs: reliability).
READ_LIMIT = 4 * MAX_HEADER_BYTES


def _peak(fn, *args) -> int:
    tracemalloc.start()
    try:
        try:
            fn(*args)
        except NetshrinkError:
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_within_a_multiple_of_the_file_before_any_section_is_trusted():
    rng = np.random.default_rng(7)
    pick = corpus.NumpyPicker(rng)
    for kind in corpus.FILES:
        corpus.exercise(corpus.corpus_file(kind), kind)  # the kernels compile untraced
    for i in range(240):
        kind = corpus.FILES[i % len(corpus.FILES)]
        damage = corpus.DAMAGES[sorted(corpus.DAMAGES)[i % len(corpus.DAMAGES)]]
        data = damage(corpus.corpus_file(kind), pick)
        container = _peak(read_sections, data)
        assert container <= CONTAINER_ALLOWANCE + CONTAINER_MULTIPLE * len(data)
        assert _peak(corpus.exercise, data, kind) <= READ_LIMIT


def test_empty_sections_by_the_thousand_cost_a_bounded_multiple_of_the_file():
    preamble, parts = corpus.split(corpus.corpus_file("huffman"))
    data = preamble + parts[0] + corpus.frame(b"RAW ", b"") * 20_000 + parts[-1]
    assert _peak(read_sections, data) <= CONTAINER_ALLOWANCE + CONTAINER_MULTIPLE * len(data)
    _must_fail_cleanly(data, "huffman")
