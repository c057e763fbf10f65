"""The benchmark harness's choices: which precisions it times here, and how a failed run ends it."""

import sys

import pytest

from benchmarks import decode


@pytest.mark.parametrize(("auto", "expected"), [("bfloat16", ["bfloat16", "float32"]), ("float32", ["float32"])])
def test_the_precisions_timed_follow_the_hardware(monkeypatch, auto, expected):
    monkeypatch.setattr(decode, "auto_dtype", lambda: (auto, "a reason"))
    assert decode.machine_dtypes() == expected


def test_a_failed_run_ends_the_benchmark_with_its_last_error_line():
    cmd = [sys.executable, "-c", "import sys; print('{}'); sys.exit('RuntimeError: no primitive')"]
    with pytest.raises(SystemExit) as e:
        decode.last_json(cmd)
    assert "exited with status 1: RuntimeError: no primitive" in str(e.value)
    assert decode.last_json([sys.executable, "-c", "print('log'); print('{\"a\": 1}')"]) == {"a": 1}
