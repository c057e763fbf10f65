"""Cho et al. (2014), "Learning Phrase Representations using RNN Encoder-Decoder": a GRU
encoder-decoder with the context vector fed to every decoder step and to the output layer
(preset ``cho2014``).

    python experiments/cho2014.py                                  # embedded dates task
    python experiments/cho2014.py --data ../shared/data/multi30k   # Multi30k de->en
    python experiments/cho2014.py --model.context-every-step false # context as initial state only
"""

from paper import main

from s2s_jax.compilation_cache import use_compilation_cache
from s2s_jax.hugepages import reexec_with_huge_pages

if __name__ == "__main__":
    reexec_with_huge_pages()
    use_compilation_cache()
    main("cho2014", __doc__)
