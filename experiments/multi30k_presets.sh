#!/usr/bin/env bash
# The Multi30k rows of EXPERIMENTS.md: each paper preset's `_multi30k` twin trained for the same
# budget of EPOCHS epochs (228 steps of 128 sentences each; an epoch ends with a validation and a
# checkpoint), then scored on test2016 with greedy decoding and beam 5. Runs from the repository
# root; a finished workdir is reused and a larger EPOCHS resumes it from its last checkpoint.
# Results: runs/paper_multi30k/*/result.json (python experiments/results_table.py runs/paper_multi30k).
set -euo pipefail
PY=${PY:-.venv/bin/python}
EPOCHS=${EPOCHS:-2}
R=runs/paper_multi30k
RUN=(--data ../shared/data/multi30k --train.quiet --train.num-epochs "$EPOCHS")

"$PY" experiments/sutskever2014.py "${RUN[@]}" --workdir $R/sutskever2014
"$PY" experiments/cho2014.py "${RUN[@]}" --workdir $R/cho2014
"$PY" experiments/bahdanau2015.py "${RUN[@]}" --workdir $R/bahdanau2015
# Bengio et al. 2015 beside its teacher-forced twin above: the gold token's probability decays as
# k / (k + exp(i / k)), k chosen so that it reaches 0.5 at the last step (k = 100 for 2 epochs).
"$PY" experiments/scheduled_sampling.py "${RUN[@]}" --workdir $R/scheduled_sampling \
  --train.scheduled-sampling.k "${SS_K:-100}"
"$PY" experiments/luong2015.py "${RUN[@]}" --workdir $R/luong2015
