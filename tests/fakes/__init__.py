"""Small aiohttp servers that play the outside world (Model Serving, Slack, Bot Connector)."""
