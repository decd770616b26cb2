"""For extension authors: ``symphony validate``'s checks, project scaffolds and the pytest plugin."""
