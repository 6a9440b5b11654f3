"""`nnrecipe runs` says when a finished run's model file is gone (predict cannot use it), rather than listing
it as any other run."""

from __future__ import annotations

import shutil

from sklearn.datasets import load_breast_cancer


def test_a_run_without_its_model_file_is_listed_as_such(cli, tmp_path):
    data = tmp_path / "bc.csv"
    load_breast_cancer(as_frame=True).frame.sample(120, random_state=0).to_csv(data, index=False)
    code, out, err = cli("train", data, "--target", "target", "--epochs", "1", "--out", tmp_path / "runs",
                         "--no-report")
    assert code == 0, err
    run = next((tmp_path / "runs").iterdir())
    shutil.copytree(run, tmp_path / "runs" / "copy")
    (tmp_path / "runs" / "copy" / "model.safetensors").unlink()
    code, out, err = cli("runs", tmp_path / "runs")
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert lines["copy"].endswith("(model.safetensors missing)")
    assert not lines[run.name].endswith("missing)")
