"""What an extension may reach and how that is enforced: grants and consent, the reach of each
permission, the in-process guard (an audit layer, not a sandbox) and the isolated worker (``_sandbox``)."""
