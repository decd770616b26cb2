"""Attack: fill the disk through the extension's own (writable) cache folder."""

from __future__ import annotations

from typing import Any

from hostile_kit import Hostile

_CHUNK = 64 << 20


class Ext(Hostile):
    def fill(self, total: int, files: int) -> dict[str, Any]:
        """Write ``total`` bytes of real data into ``files`` files of ``{cache}``; stop at the first error."""
        block = memoryview(b"\0" * _CHUNK)
        written, error = 0, None
        share = total // files
        for number in range(files):
            left = share
            try:
                with open(self.context.cache_dir / f"fill-{number}.bin", "wb", buffering=0) as file:
                    while left > 0:
                        done = file.write(block[: min(left, _CHUNK)])
                        written += done
                        left -= done
            except OSError as exc:
                error = f"{type(exc).__name__}: {exc}"
                break
        return {"written": written, "error": error}
