"""The deployment side: which served version answered, rollouts announced with before / after quality,
rollback from the thread, and the Health Monitor's deployment checklist (DESIGN "Deployments")."""
