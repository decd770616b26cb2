"""An import-linter contract type for Symphony's rules about who may import the core.

``symphony_core`` keeps its implementation in underscore modules. With ``scope = private`` a source
package may import ``symphony_core`` itself (its ``__all__`` is the contract) but no module whose dotted
path has a part starting with an underscore; with ``scope = all`` it may import nothing of it (extension
code, which uses only the public packages). A broken contract is reported as ``file:line`` so an editor
can jump there.
"""

from __future__ import annotations

import importlib.util
import os

import grimp
from importlinter import Contract, ContractCheck, fields, output


class CoreImportsContract(Contract):
    """Source packages import none of the core's private modules (``private``) or nothing of it (``all``)."""

    type_name = "core-imports"

    source_modules = fields.ListField(subfield=fields.ModuleField())
    private_package = fields.StringField()
    scope = fields.StringField()

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        package = str(self.private_package)
        modules = {package} | graph.find_descendants(package)
        if str(self.scope) == "all":
            private = modules
        else:
            private = {
                module for module in modules if any(part.startswith("_") for part in module.split(".")[1:])
            }
        sources = {str(module.name) for module in self.source_modules}  # type: ignore[attr-defined]
        sources |= {descendant for source in set(sources) for descendant in graph.find_descendants(source)}
        violations = []
        for imported in sorted(private):
            for importer in sorted(graph.find_modules_that_directly_import(imported) & sources):
                for detail in graph.get_import_details(importer=importer, imported=imported):
                    violations.append((_file_of(importer), detail["line_number"], importer, imported))
        return ContractCheck(kept=not violations, warnings=[], metadata={"violations": violations})

    def render_broken_contract(self, check: ContractCheck) -> None:
        package = str(self.private_package)
        for file, line, importer, imported in check.metadata["violations"]:
            if str(self.scope) == "all":
                advice = "extension code imports only the public package of its kind, which re-exports what it needs"
            else:
                advice = (
                    f"import the name from `{package}` itself (add it to {package}.__all__ if it is missing)"
                )
            output.print_error(f"{file}:{line}: {importer} imports {imported}; {advice}", bold=False)
            output.new_line()


def _file_of(module: str) -> str:
    spec = importlib.util.find_spec(module)
    origin = spec.origin if spec is not None and spec.origin else module
    return os.path.relpath(origin) if os.path.isabs(origin) else origin
