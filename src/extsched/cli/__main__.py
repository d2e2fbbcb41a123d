"""``python -m extsched.cli``: the same as the ``extsched`` command."""

from extsched.cli import main

main()
