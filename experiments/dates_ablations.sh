#!/usr/bin/env bash
# The dates-task rows and ablations of EXPERIMENTS.md: the five paper presets at their own
# budgets (seed 0), then each ablation arm at 300 steps with 8 seeds trained together in one
# program (train.seeds), where the presets are still learning and differences show.
#   experiments/dates_ablations.sh [presets] [context] [score] [sampling] [sampling150] [reversal]
# runs the groups named (all of them by default). Runs from the repository root; finished
# workdirs are reused, so an interrupted sweep resumes. Results: runs/paper_dates/*/seed_*/result.json,
# tabled with intervals and Welch's tests by experiments/results_table.py (see EXPERIMENTS.md).
set -euo pipefail
PY=${PY:-.venv/bin/python}
R=runs/paper_dates
SEEDS=(--seeds 0 1 2 3 4 5 6 7)
ABL=(--train.quiet --train.num-steps 300 "${SEEDS[@]}")
WANTED=("$@")
[ ${#WANTED[@]} -eq 0 ] && WANTED=(presets context score sampling sampling150 reversal)
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

# Bengio et al. 2015, sec. 2.4: teacher forcing vs the three decays of the probability of feeding
# the gold token, each reaching about 0.5 at the last step (the model's own samples fed half the
# time). sampling_arms STEPS SUFFIX LINEAR_C EXPONENTIAL_K INVERSE_SIGMOID_K
sampling_arms() {
  local args=(--train.quiet --train.num-steps "$1" "${SEEDS[@]}") ss=experiments/scheduled_sampling.py
  "$PY" experiments/bahdanau2015.py "${args[@]}" --workdir $R/teacher_forcing$2
  "$PY" $ss "${args[@]}" --workdir $R/ss_linear$2 --train.scheduled-sampling.schedule linear \
    --train.scheduled-sampling.k 1 --train.scheduled-sampling.c "$3"
  "$PY" $ss "${args[@]}" --workdir $R/ss_exponential$2 --train.scheduled-sampling.schedule exponential \
    --train.scheduled-sampling.k "$4"
  "$PY" $ss "${args[@]}" --workdir $R/ss_inverse_sigmoid$2 --train.scheduled-sampling.schedule inverse_sigmoid \
    --train.scheduled-sampling.k "$5"
}
want sampling && sampling_arms 300 "" 0.001667 0.99769 70
# Half the budget, where teacher forcing is not yet at 100% on every seed.
want sampling150 && sampling_arms 150 _150 0.003333 0.99539 40.5

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
