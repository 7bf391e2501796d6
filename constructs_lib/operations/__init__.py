"""Operating the gate: metrics, alarms and a dashboard (issue 11).

    topic = sns.Topic(stack, "GateAlarms", enforce_ssl=True)
    admission = AdmissionController(stack, "Admission", supply_chains=[chain],
                                    alarms=AdmissionAlarms(topic=topic))
    admission.protect(service)                      # also watches that its deployments call the gate
    AdmissionDashboard(stack, "GateDashboard", controller=admission)
"""

from __future__ import annotations

from .alarms import AdmissionAlarms, GateAlarms
from .dashboard import AdmissionDashboard
from .metrics import AdmissionMetrics, DecisionOutcome, ImageOutcome

__all__ = ["AdmissionAlarms", "AdmissionDashboard", "AdmissionMetrics", "DecisionOutcome", "GateAlarms",
           "ImageOutcome"]
