"""The provider's negotiator: small components chained into one decision (as in yagna's provider agent).

Each :class:`~provider.negotiator.base.NegotiatorComponent` looks at the requestor's proposal and our
offer-in-progress and accepts it, adjusts the offer (a counter), or rejects with a reason.
:class:`~provider.negotiator.composite.CompositeNegotiator` runs them in order; the first rejection
wins. The same chain judges an incoming agreement (``Stage.AGREEMENT``), where anything short of
"accept" means the agreement is rejected. :func:`default_negotiator` builds the standard chain.
"""

from provider.negotiator.base import (
    NegotiationContext,
    NegotiationResult,
    NegotiatorComponent,
    Stage,
    Verdict,
)
from provider.negotiator.composite import CompositeNegotiator, default_negotiator

__all__ = [
    "CompositeNegotiator",
    "NegotiationContext",
    "NegotiationResult",
    "NegotiatorComponent",
    "Stage",
    "Verdict",
    "default_negotiator",
]
