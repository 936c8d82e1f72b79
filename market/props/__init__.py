"""Properties and constraints: the language demands and offers are matched in (spec §4).

Every subscription carries a property set and a constraint in yagna's LDAP-filter dialect. This
package is the pure core of matching: it flattens property sets to the dotted form the API returns,
parses and compiles constraints, evaluates them three-valued (TRUE / FALSE / UNDEFINED) exactly as
yagna's resolver does, and explains a failed match in terms a requestor or provider can act on.
The market node's offer/demand index (:mod:`market.hub.matching`) is built on top of it.

Typical use::

    c = parse_constraints("(&(golem.runtime.name=vm)(golem.inf.mem.gib>=4))")
    c.evaluate(flatten(offer_properties))        # Tri.TRUE / FALSE / UNDEFINED
    result = match(demand_props, demand_c, offer_props, offer_c)
    if not result.matched:
        print(result.explain())
"""

from market.props.constraint import MATCH_ALL, Constraint, parse_constraints
from market.props.errors import ConstraintSyntaxError, PropertyError, PropsError
from market.props.evaluate import Evaluator, Tri
from market.props.matching import MatchResult, explain, match
from market.props.nodes import And, Compare, Node, Not, Op, Or, Present, ValueType
from market.props.properties import flatten, unflatten

__all__ = [
    "MATCH_ALL",
    "And",
    "Compare",
    "Constraint",
    "ConstraintSyntaxError",
    "Evaluator",
    "MatchResult",
    "Node",
    "Not",
    "Op",
    "Or",
    "Present",
    "PropertyError",
    "PropsError",
    "Tri",
    "ValueType",
    "explain",
    "flatten",
    "match",
    "parse_constraints",
    "unflatten",
]
