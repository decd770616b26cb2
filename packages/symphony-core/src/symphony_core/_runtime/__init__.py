"""Running extensions: the ``Host`` facade, the tiers that run an extension in process or in isolated
workers, the executor that applies budgets, and installing extensions into their environments."""
