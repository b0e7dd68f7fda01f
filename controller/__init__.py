"""The controller: vCenter's and NSX Manager's view of a lab, compiled into
OpenFlow flows for every vSwitch bridge.

Pure compilers (``vswitch``, ``overlay``, ``dlr``, ``dfw``, ``mirror``, ...)
turn a bridge's binding into ``FlowSpec``s checked against the pipeline
declared once (``pipeline``); ``state`` keeps the view current; ``failover``
and ``vmotion`` own those runtime protocols; ``app`` is the thin os-ken
driver that installs the difference; ``simulate`` and ``explain`` walk a
frame through compiled flows without a switch (``vlab trace``).
"""
