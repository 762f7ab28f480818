"""nbgrader's exchange submit, with the submission readable by its owner and the graders only.

nbgrader's own ``submit`` leaves each entry of ``<exchange>/<course>/inbound`` open to everyone
(the entry folder mode 0777, its files 0644): another student cannot list the inbound folder, but one
who learns an entry's name (``<student>+<assignment>+<time>+<random>``) can read the notebook, and
replace it. ``PrivateSubmit`` is the same submit, after which the entry folder is 0770: its owner and
the members of its group, which it takes from the inbound folder (nbgrader sets that folder's
set-group-ID bit; its group is the releasing instructor's, or the one the hub admin gives it), may
enter it; nobody else may. The group must hold graders only, never a student.

Set in every user server's nbgrader configuration (the server must import this package)::

    c.ExchangeFactory.submit = "autograder.exchange.PrivateSubmit"
"""
from __future__ import annotations

import grp
import os
import stat

from nbgrader.exchange.default.submit import ExchangeSubmit

ENTRY_MODE = 0o770


class PrivateSubmit(ExchangeSubmit):
    """``nbgrader submit`` whose inbound entry only its owner and the inbound folder's group can enter."""

    def copy_files(self):
        super().copy_files()
        entry = os.path.join(self.inbound_path, self.assignment_filename)
        os.chmod(entry, ENTRY_MODE)
        gid = os.stat(entry).st_gid
        try:
            name = grp.getgrgid(gid).gr_name
        except KeyError:
            name = f"gid {gid}"
        if gid in os.getgroups() or gid == os.getgid():
            self.log.warning("The exchange's inbound folder belongs to group %s, which you are in: other members "
                             "of it may read your submission. Tell your instructor (it should be a group of "
                             "graders only).", name)
        self.log.info("Submission readable by you and group %s only (%s)", name, stat.filemode(os.stat(entry).st_mode))
