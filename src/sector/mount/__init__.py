"""``sector mount``: the cluster as a directory, through FUSE, on top of :mod:`sector.client`.

- :mod:`.fs` - the FUSE operations (and why mfusepy);
- :mod:`.files` - one open file: the committed version and a staged new one; what
  the mount remembers of the files it committed lately (``RecentCommits``);
- :mod:`.errors` - Sector errors as errno, in one place;
- :mod:`.run` - mount options, serving, unmounting.

Only :mod:`.fs` imports the FUSE binding, so the rest loads where libfuse is missing.
"""
