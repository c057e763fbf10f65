"""Bengio et al. (2015), "Scheduled Sampling for Sequence Prediction with Recurrent Neural
Networks", on the Bahdanau attention model (preset ``scheduled_sampling``).

    python experiments/scheduled_sampling.py                                          # inverse sigmoid
    python experiments/scheduled_sampling.py --train.scheduled-sampling.schedule linear \\
        --train.scheduled-sampling.k 1 --train.scheduled-sampling.c 0.001             # linear decay
    python experiments/scheduled_sampling.py --train.scheduled-sampling.schedule none # teacher forcing
    python experiments/scheduled_sampling.py --data ../shared/data/multi30k           # Multi30k de->en
"""

from paper import main

from s2s_jax.programs import start_program

if __name__ == "__main__":
    start_program()
    main("scheduled_sampling", __doc__)
