"""Talking to the answer engine: Databricks Model Serving or the embedded demo engine.

Nothing here knows about chat platforms.
"""
