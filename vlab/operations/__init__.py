"""Operations on a running lab, from any process: what an operator does to
ESXi hosts and cables (vMotion, reconnect, uplink cables) and pktcap-uw
captures. ``LabControl`` is the entry point; ``vmotion`` and ``capture``
hold those protocols' steps."""

from .capture import Capture, capture_stats
from .errors import CaptureIncomplete, OperationError
from .labcontrol import LabControl

__all__ = ["Capture", "CaptureIncomplete", "LabControl", "OperationError", "capture_stats"]
