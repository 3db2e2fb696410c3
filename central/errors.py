"""The one error root of the central side: the CLI prints it as one line and exits with code 2.

The tree (every subclass in central/, kept complete by tests/test_error_tree.py):

* CentralError                  central/errors.py: something an operator must fix
  + CAError                     central/ca/authority.py: a CA operation refused; the message says why and what to do
"""

from __future__ import annotations


class CentralError(RuntimeError):
    """Something an operator must fix (a database that cannot be reached, a bad argument)."""
