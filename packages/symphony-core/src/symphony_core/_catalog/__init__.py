"""What is installed: records of extensions found through entry points and static manifests, the index
that makes warm discovery cheap, compatibility checks, and the managed environments. Imports nothing it
finds."""
