"""The lab shell: the ESXi- and vSphere-flavoured commands a network engineer
types at a running lab (esxcli, esxtop, pktcap-uw, vmotion, ...), as the
Mininet CLI (``labcli``) and as ``vlab`` subcommands (``commands``)."""
