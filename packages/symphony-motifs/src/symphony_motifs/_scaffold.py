"""The project template `symphony new motif` renders: the folder ``project_template`` beside this module.

Registered in the ``symphony.scaffolds`` entry-point group; the core renders it (files ending in
``.tmpl`` are `string.Template` texts, ``__module__`` in a path is the project's import name).
"""

from importlib.resources import files

TEMPLATE = files("symphony_motifs") / "project_template"
