import json

from textstats.cli import main


def test_main_prints_the_summary_of_a_file_as_json(tmp_path, capsys):
    path = tmp_path / "in.txt"
    path.write_text("a b\n", encoding="utf-8")
    assert main([str(path)]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "chars": 4,
        "lines": 1,
        "most_common_char": "a",
        "words": 2,
    }
