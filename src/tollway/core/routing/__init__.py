"""Aliases -> deployments: the call plan, balancing, health boards, the router.

- ``classify``: what kind of failure an error is, which fallback rules it triggers;
- ``plan``: the sans-I/O call plan (which deployment next, sleep, fail);
- ``balance``: choosing among ready deployments (weighted, least in flight, latency, cost);
- ``health``: cooldowns, half-open probes, latency; ``redis_board``: the same, shared;
- ``router``: the Route implementations that drive a plan (Router, DirectRoute,
  SingleDeployment).

Building routers from tollway.yaml is ``core/assembly.py``'s job.
"""

from tollway.core.routing.plan import FallbackRule, RoutePolicy
from tollway.core.routing.router import DirectRoute, Router, SingleDeployment

__all__ = ["DirectRoute", "FallbackRule", "RoutePolicy", "Router", "SingleDeployment"]
