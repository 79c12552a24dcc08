"""Small genuine MLflow agents, served by MLflow's own AgentServer in a subprocess (tests/test_mlflow_agents.py)."""
