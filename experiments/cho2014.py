"""Cho et al. (2014), "Learning Phrase Representations using RNN Encoder-Decoder": a GRU
encoder-decoder with the context vector fed to every decoder step and to the output layer
(preset ``cho2014``).

    python experiments/cho2014.py                                  # embedded dates task
    python experiments/cho2014.py --data ../shared/data/multi30k   # Multi30k de->en
    python experiments/cho2014.py --model.context-every-step false # context as initial state only
"""

from paper import main

from s2s_jax.programs import start_program

if __name__ == "__main__":
    start_program()
    main("cho2014", __doc__)
