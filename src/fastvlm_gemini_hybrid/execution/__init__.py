"""How a decided request is carried out: execution modes as backends that wrap backends.

    plan.py     RouteDecision -> Fallback / Parallel / Escalation tree (modes.py) of Guarded leaves (call.py)
    fanout.py   many requests or items: bounded, typed errors in place, batched on a batching backend
"""
