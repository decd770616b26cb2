"""The isolated tier: extensions in worker processes that the kernel restricts to what they were granted.

The guard (``_guard``) checks what Python reports inside the host; it is not a sandbox. Here each extension
runs in a fresh interpreter that restricts itself (Landlock, namespaces, seccomp, no_new_privs, resource
limits, cgroups, a scrubbed environment) before it imports the extension, so native code is held too.
What a machine can enforce is in ``probe()``; what one worker enforces is in its ``enforced`` report.

Modules: ``_probe`` (what this machine can do), ``_profile`` (grant to restrictions), ``_confine`` (the
worker restricting itself) with ``_landlock``, ``_seccomp``, ``_syscalls``, ``_cgroups``; ``_protocol``
(framed messages) and ``_bulk`` (shared memory for arrays and frames); ``_worker`` (the worker's main);
``_process`` (one worker seen from the host) and ``_pool`` (warm pools, restarts, quarantine);
``_remote`` and ``_fronts`` (what stands in the host for an isolated extension: a kit's front, or a
handle that runs every method in a worker).

Nothing is imported here: the worker imports this package before it restricts itself.
"""
