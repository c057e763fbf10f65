"""Bahdanau, Cho & Bengio (2015), "Neural Machine Translation by Jointly Learning to Align and
Translate": a bidirectional GRU encoder and additive attention (preset ``bahdanau2015``).

    python experiments/bahdanau2015.py                                  # embedded dates task
    python experiments/bahdanau2015.py --data ../shared/data/multi30k   # Multi30k de->en
"""

from paper import main

from s2s_jax.compilation_cache import use_compilation_cache
from s2s_jax.hugepages import reexec_with_huge_pages

if __name__ == "__main__":
    reexec_with_huge_pages()
    use_compilation_cache()
    main("bahdanau2015", __doc__)
