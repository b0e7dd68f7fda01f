"""The lab file: its typed model (``model``), loading (``load``), the checks
a schema cannot express (``check``: ``vlab check``), and what follows from
the file alone (``resolve``: effective teaming, switches of port groups;
``edits``: an administrator's changes to a running lab, replayed on the file;
``shaping``: traffic shaping policies as tc qdiscs;
``firewall``: rule names; ``reachability``: who should reach whom)."""
