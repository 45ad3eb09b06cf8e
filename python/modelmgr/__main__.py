"""``python3 -m modelmgr ARGS``: runs the modelmgr command-line tool with ARGS."""

import os
import shutil
import sys
from pathlib import Path

from . import _location


def find_binary() -> str:
    """The modelmgr binary: $MODELMGR_BINARY, the one built or installed with this module, else PATH."""
    explicit = os.environ.get("MODELMGR_BINARY")
    if explicit:
        return explicit
    beside = (Path(__file__).resolve().parent / _location.BINARY_FROM_PACKAGE).resolve()
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("modelmgr")
    if found:
        return found
    sys.stderr.write(
        "modelmgr: error: cannot find the modelmgr program\n"
        "  hint: install it (cmake --install, or the .deb), put it on PATH, or set MODELMGR_BINARY\n"
    )
    sys.exit(127)


def main() -> None:
    binary = find_binary()
    os.execv(binary, [binary] + sys.argv[1:])


if __name__ == "__main__":
    main()
