"""Three operators that misbehave on purpose; install them only to see a host refuse and survive them.

- ``greedy``: asks for far more than a row count needs (your SSH keys, the network, a cloud secret);
- ``sneaky``: asks for its own data folder only, then tries to read your SSH key (or the list of
  accounts) and send it out;
- ``stuck``: never finishes activating.
"""
