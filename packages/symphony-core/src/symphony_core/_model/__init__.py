"""What an extension is: kinds, the manifest and its permissions, the extension base class, lifecycle
states, the host's hook specification, and the errors every layer raises. Imports no other layer."""
