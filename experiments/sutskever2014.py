"""Sutskever, Vinyals & Le (2014), "Sequence to Sequence Learning with Neural Networks":
a deep LSTM encoder-decoder reading the source reversed, the context only as the decoder's
initial state, SGD with learning-rate halving, beam search (preset ``sutskever2014``).

    python experiments/sutskever2014.py                                  # embedded dates task
    python experiments/sutskever2014.py --data ../shared/data/multi30k   # Multi30k de->en
    python experiments/sutskever2014.py --model.reverse-source false     # the ablation of sec. 3.3
"""

from paper import main

if __name__ == "__main__":
    main("sutskever2014", __doc__)
