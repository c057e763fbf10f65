#!/usr/bin/env bash
# The dates-task rows and ablations of EXPERIMENTS.md: the five paper presets at their own
# budgets (seed 0), then each ablation arm at 300 steps with 8 seeds trained together in one
# program (train.seeds), where the presets are still learning and differences show.
#   experiments/dates_ablations.sh [presets] [context] [score] [sampling] [reversal]
# runs the groups named (all of them by default). Runs from the repository root; finished
# workdirs are reused, so an interrupted sweep resumes. Results: runs/paper_dates/*/seed_*/result.json,
# tabled with intervals and Welch's tests by experiments/results_table.py (see EXPERIMENTS.md).
set -euo pipefail
PY=${PY:-.venv/bin/python}
R=runs/paper_dates
SEEDS=(--seeds 0 1 2 3 4 5 6 7)
ABL=(--train.quiet --train.num-steps 300 "${SEEDS[@]}")
WANTED=("$@")
[ ${#WANTED[@]} -eq 0 ] && WANTED=(presets context score sampling reversal)
want() { [[ " ${WANTED[*]} " == *" $1 "* ]]; }

if want presets; then
  for paper in sutskever2014 cho2014 bahdanau2015 luong2015 scheduled_sampling; do
    "$PY" experiments/$paper.py --train.quiet --workdir $R/$paper
  done
fi

if want context; then  # decoder initial state only, also at every step (Cho 2014), attention (Bahdanau 2015)
  "$PY" experiments/cho2014.py "${ABL[@]}" --workdir $R/context_initial --model.context-every-step false
  "$PY" experiments/cho2014.py "${ABL[@]}" --workdir $R/context_every_step
  "$PY" experiments/bahdanau2015.py "${ABL[@]}" --workdir $R/context_attention
fi

if want score; then  # Luong et al. 2015, eq. 8: the attention score
  for score in dot general additive; do
    "$PY" experiments/luong2015.py "${ABL[@]}" --workdir $R/score_$score --model.attention $score
  done
fi

if want sampling; then
  # Bengio et al. 2015, sec. 2.4: teacher forcing vs the three decays of the probability of feeding
  # the gold token, each reaching about 0.5 at step 300 (the model's own samples fed half the time).
  "$PY" experiments/bahdanau2015.py "${ABL[@]}" --workdir $R/teacher_forcing
  SS=experiments/scheduled_sampling.py
  "$PY" $SS "${ABL[@]}" --workdir $R/ss_linear --train.scheduled-sampling.schedule linear \
    --train.scheduled-sampling.k 1 --train.scheduled-sampling.c 0.001667
  "$PY" $SS "${ABL[@]}" --workdir $R/ss_exponential --train.scheduled-sampling.schedule exponential \
    --train.scheduled-sampling.k 0.99769
  "$PY" $SS "${ABL[@]}" --workdir $R/ss_inverse_sigmoid --train.scheduled-sampling.schedule inverse_sigmoid \
    --train.scheduled-sampling.k 70
fi

if want reversal; then
  # Sutskever et al. 2014, sec. 3.3: reading the source reversed helps. Without attention the dates
  # task stays on its loss plateau for hundreds of steps whichever way the source is read, so this
  # pair copies strings of up to 12 symbols (the first output symbol is the first one read), for
  # the preset's 1200 steps. A copied string is one word, whose BLEU is 0 whatever the output, so
  # "best by validation BLEU" says nothing: the pair is scored at its last checkpoint.
  REV=(--train.quiet "${SEEDS[@]}" --data.source copy --decode.max-len-b 16 --checkpoint latest)
  "$PY" experiments/sutskever2014.py "${REV[@]}" --workdir $R/copy_source_reversed
  "$PY" experiments/sutskever2014.py "${REV[@]}" --workdir $R/copy_source_forward --model.reverse-source false
fi
