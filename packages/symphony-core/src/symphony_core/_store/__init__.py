"""Where Symphony keeps things and reads them back: the home folder, the state database (grants,
overrides, audit) and the configuration layers. Built on the model only."""
