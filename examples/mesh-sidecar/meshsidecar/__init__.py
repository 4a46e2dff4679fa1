"""meshsidecar: a reference HTTP/1.1 proxy sidecar that hands its listening sockets over during a
Kruise SidecarSet HotUpgrade without losing requests.

Standard library only (Python 3.11, Linux). Entry point: ``python -m meshsidecar <command>``;
see ``cli.py`` for the commands and ``README.md`` next to this package for the protocol.
"""

__version__ = "0.1.0"
