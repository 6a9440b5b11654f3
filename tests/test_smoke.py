import nnrecipe
from nnrecipe.cli import main


def test_import_light():
    assert "Trainer" in nnrecipe.__all__


def test_help_exits_zero(capsys):
    for cmd in (["--help"], ["train", "--help"], ["predict", "--help"]):
        try:
            main(cmd)
        except SystemExit as e:
            assert e.code == 0
    assert "--target" in capsys.readouterr().out
