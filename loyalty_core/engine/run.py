"""Per-call bookkeeping shared by the stages: the trace, applied rules, coupons used and issued."""

from __future__ import annotations

from loyalty_core.engine.compiled import CompiledGroup, CompiledRule, LineInfo
from loyalty_core.engine.conditions import Facts
from loyalty_core.engine.effects import IssueCoupon
from loyalty_core.engine.result import AppliedRule, TraceEntry
from loyalty_core.engine.targeting import LineFilter


class Run:
    """Mutable scratchpad of one price() call; never escapes it (the result is immutable)."""

    def __init__(self, lines: list[LineInfo], facts: Facts, currency: str, lang: str, valid_coupons: list) -> None:
        self.lines = lines
        self.facts = facts
        self.currency = currency
        self.lang = lang
        self.trace: list[TraceEntry] = []
        self.applied: list[AppliedRule] = []
        self.issued: list[str] = []
        self.used_coupons: set[str] = set()
        self._valid_coupons = valid_coupons
        self._taking_part = [line for line in lines if not line.excluded]
        self._filter_cache: dict[int, list[LineInfo]] = {}

    def note(self, stage: str, group: str, rule: str, fired: bool, reason: str) -> None:
        self.trace.append(TraceEntry(stage=stage, group=group, rule=rule, fired=fired, reason=reason))

    def lines_for(self, lines: LineFilter | None, match) -> list[LineInfo]:
        """Lines a filter picks among those taking part in loyalty (excluded goods never)."""
        if lines is None or match is None:
            return self._taking_part
        key = id(lines)
        found = self._filter_cache.get(key)
        if found is None:
            facts = self.facts
            found = [line for line in self._taking_part if match(line, facts)]
            self._filter_cache[key] = found
        return found

    def matcher(self, rule: CompiledRule):
        """Lines picked by a filter inside an effect (BOGO's buy/get, a set's components)."""
        return lambda lines: self.lines_for(lines, rule.sub_matches[id(lines)])

    def use_coupons(self, rule: CompiledRule) -> None:
        for coupon in self._valid_coupons:
            if coupon.code in rule.coupon_codes or (coupon.series and coupon.series in rule.coupon_series):
                self.used_coupons.add(coupon.code)

    def firing_rules(self, group: CompiledGroup, stage: str) -> list[CompiledRule]:
        """Rules of a group whose schedule, targeting and condition pass; issue-coupon rules act here."""
        reason = group.gate(self.facts)
        if reason is not None:
            for rule in group.rules:
                self.note(stage, group.code, rule.code, False, f"group: {reason}")
            return []
        firing = []
        for rule in group.rules:
            reason = rule.gate(self.facts)
            if reason is not None:
                self.note(stage, group.code, rule.code, False, reason)
            elif isinstance(rule.effect, IssueCoupon):
                self.issued.append(rule.effect.series)
                self.use_coupons(rule)
                self.note(stage, group.code, rule.code, True, f"issues a coupon of series {rule.effect.series}")
                self.applied.append(
                    AppliedRule(
                        rule=rule.code,
                        name=rule.name,
                        effect=rule.kind,
                        lines=[],
                        explanation=f"{rule.name}: you get a coupon ({rule.effect.series})",
                    )
                )
            else:
                firing.append(rule)
        return firing
