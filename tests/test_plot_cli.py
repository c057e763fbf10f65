"""s2s-plot: the curves and the attention heatmaps of a finished run, as PNG files."""

from __future__ import annotations

import os

import matplotlib.image
import pytest

from s2s_jax.cli import plot_main
from tests.test_summary import tiny_run

pytestmark = pytest.mark.xdist_group("tiny_run")  # the run of test_summary.py, trained once per worker


def test_plot_writes_curves_and_heatmaps_of_a_finished_run(tmp_path_factory, capsys):
    workdir = tiny_run(str(tmp_path_factory.getbasetemp())).workdir
    plot_main(["--workdir", workdir, "--split", "test", "--examples", "3", "--checkpoint", "latest"])
    out = os.path.join(workdir, "plots")
    want = [os.path.join(out, name) for name in
            ("curves.png", "attention_test_0.png", "attention_test_1.png", "attention_test_2.png")]
    assert capsys.readouterr().out.splitlines() == want
    assert sorted(os.listdir(out)) == sorted(os.path.basename(p) for p in want)  # no temporary files left
    for path in want:
        pixels = matplotlib.image.imread(path)
        assert pixels.ndim == 3 and pixels.std() > 0


def test_plot_of_a_directory_without_a_run_is_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        plot_main(["--workdir", str(tmp_path), "--out", str(tmp_path / "plots")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err == f"s2s-plot: error: {tmp_path} holds no config.json; it is not a training workdir.\n"
    assert not os.path.exists(tmp_path / "plots")
