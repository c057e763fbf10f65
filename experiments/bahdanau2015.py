"""Bahdanau, Cho & Bengio (2015), "Neural Machine Translation by Jointly Learning to Align and
Translate": a bidirectional GRU encoder and additive attention (preset ``bahdanau2015``).

    python experiments/bahdanau2015.py                                  # embedded dates task
    python experiments/bahdanau2015.py --data ../shared/data/multi30k   # Multi30k de->en
"""

from paper import main

from s2s_jax.programs import start_program

if __name__ == "__main__":
    start_program()
    main("bahdanau2015", __doc__)
