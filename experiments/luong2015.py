"""Luong, Pham & Manning (2015), "Effective Approaches to Attention-based Neural Machine
Translation": stacked LSTMs, global attention with dot, general or concat scores, the
attentional state and input feeding (preset ``luong2015``).

    python experiments/luong2015.py                                  # general score, dates task
    python experiments/luong2015.py --model.attention dot            # the other scores
    python experiments/luong2015.py --model.input-feeding false      # without input feeding
    python experiments/luong2015.py --data ../shared/data/multi30k   # Multi30k de->en
"""

from paper import main

from s2s_jax.programs import start_program

if __name__ == "__main__":
    start_program()
    main("luong2015", __doc__)
