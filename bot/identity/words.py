"""What both adapters say about connecting, in the same words (Slack mrkdwn and Teams cards read them alike)."""

CONNECT_TEXT = "Connect your Databricks account"
SIGN_IN_ONCE = ("Sign in once; healthbot then asks the Health Monitor as you, with your own Databricks permissions. "
                "The link is yours alone and works for 10 minutes.")
DISCONNECTED = ("Disconnected: your Databricks tokens are deleted and revoked. healthbot will ask you to connect again "
                "before answering.")
NOTHING_TO_DISCONNECT = "You had no connected Databricks account."
NO_ACCOUNT_HERE = "healthbot asks as its service principal here: there is no account to connect."
