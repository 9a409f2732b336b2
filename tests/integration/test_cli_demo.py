from llm_routing.cli import main


def test_llm_routing_demo_runs_on_the_simulator_and_reports(capsys):
    assert main(["demo", "--no-progress", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "Simulated provider" in out and "rate-limited (429)" in out


def test_llm_routing_sim_without_a_command_is_usage_error(capsys):
    assert main(["sim"]) == 2
    assert "serve" in capsys.readouterr().err
