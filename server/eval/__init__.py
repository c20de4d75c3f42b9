"""`codebooga eval`: score OpenAI-compatible endpoints on executed code tasks (HumanEval, HumanEval-JS).

It only talks HTTP to the endpoints it scores, so it depends on nothing of the serving engine."""
