"""Sutskever, Vinyals & Le (2014), "Sequence to Sequence Learning with Neural Networks":
a deep LSTM encoder-decoder reading the source reversed, the context only as the decoder's
initial state, learning-rate halving (driving Adam; ``--train.optimizer sgd --train.learning-rate
0.7`` for the paper's SGD), beam search (preset ``sutskever2014``).

    python experiments/sutskever2014.py                                  # embedded dates task
    python experiments/sutskever2014.py --data ../shared/data/multi30k   # Multi30k de->en
    python experiments/sutskever2014.py --model.reverse-source false     # the ablation of sec. 3.3
"""

from paper import main

from s2s_jax.programs import start_program

if __name__ == "__main__":
    start_program()
    main("sutskever2014", __doc__)
