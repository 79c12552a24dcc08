"""The embedded demo engine: answers from a bundled synthetic platform, no workspace needed."""

from agent.demo.engine import DemoEngine

__all__ = ["DemoEngine"]
