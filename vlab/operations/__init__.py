"""Operations on a running lab, from any process: what an operator does to
ESXi hosts and cables (vMotion, reconnect, uplink cables) and pktcap-uw
captures. See ``labcontrol.LabControl``."""

from .labcontrol import Capture, CaptureIncomplete, LabControl, OperationError, capture_stats

__all__ = ["Capture", "CaptureIncomplete", "LabControl", "OperationError", "capture_stats"]
