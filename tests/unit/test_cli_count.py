import io

from llm_routing.cli import main
from llm_routing.tokens import count_tokens


def test_count_file_is_exact_for_openai(tmp_path, capsys):
    path = tmp_path / "doc.txt"
    path.write_text("hello world, how are you?", encoding="utf-8")
    assert main(["count", "gpt-4o-mini", str(path)]) == 0
    out = capsys.readouterr().out
    expected = count_tokens("hello world, how are you?", "gpt-4o-mini")
    assert out.startswith(f"{expected:,} tokens for openai:gpt-4o-mini (exact, o200k_base)")


def test_count_stdin_as_message_adds_chat_overhead(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("hello"))
    assert main(["count", "openai:gpt-4o-mini", "--as-message"]) == 0
    expected = count_tokens([("user", "hello")], "gpt-4o-mini")
    assert capsys.readouterr().out.startswith(f"{expected:,} tokens")


def test_count_says_estimate_for_other_providers(tmp_path, capsys):
    path = tmp_path / "doc.txt"
    path.write_text("some text", encoding="utf-8")
    assert main(["count", "claude-haiku-4-5", str(path)]) == 0
    assert "(estimate, estimate:anthropic)" in capsys.readouterr().out


def test_count_unknown_model_exits_2_with_how_to_register(tmp_path, capsys):
    path = tmp_path / "doc.txt"
    path.write_text("x", encoding="utf-8")
    assert main(["count", "no-such-model", str(path)]) == 2
    assert "catalog.register(ModelSpec(" in capsys.readouterr().err


def test_count_missing_file_exits_2(tmp_path, capsys):
    assert main(["count", "gpt-4o-mini", str(tmp_path / "missing.txt")]) == 2
    assert "cannot read" in capsys.readouterr().err
