"""Release tooling for Symphony's independently versioned distributions.

Run it from the repository root through hatch, e.g. `hatch run release:plan`; RELEASING.md walks through
each command. Every command reads the repository it is run in, so the tests drive it in throwaway clones.
"""
