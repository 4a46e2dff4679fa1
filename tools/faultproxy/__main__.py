"""``python -m faultproxy``: see the package docstring."""

from faultproxy import main

main()
