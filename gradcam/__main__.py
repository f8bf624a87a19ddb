"""``python -m gradcam``: the same as the ``gradcam`` command."""

import sys

from gradcam.cli import main

if __name__ == "__main__":
    sys.exit(main())
