"""Coverage-guided fuzz harnesses (atheris); their checks also run under Hypothesis in tests/."""
