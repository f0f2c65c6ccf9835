"""Which live collector instance polls which device: ``shared.membership``, kept importable here."""

from shared.membership import Membership, member_id, owner, weight

__all__ = ["Membership", "member_id", "owner", "weight"]
