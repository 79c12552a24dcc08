"""Alert threads: Databricks alert and job webhooks posted to Slack and Teams, one thread per alert."""
