"""Each asker's own Databricks identity (DESIGN.md, "Each asker's own identity"): OAuth U2M sign-in
from the chat, refresh tokens sealed at rest, and the access token each question is asked with."""
