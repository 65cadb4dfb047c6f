"""Per-call bookkeeping shared by the stages: the trace, applied rules, coupons used and issued."""

from __future__ import annotations

from loyalty_core.engine.compiled import CompiledFilter, CompiledGroup, CompiledRule, LineInfo
from loyalty_core.engine.conditions import Facts
from loyalty_core.engine.effects import IssueCoupon
from loyalty_core.engine.explain import coupon_issued
from loyalty_core.engine.language import Reason, Words
from loyalty_core.engine.result import AppliedRule, TraceEntry


class Run:
    """Mutable scratchpad of one price() call; never escapes it (the result is immutable)."""

    def __init__(
        self,
        lines: list[LineInfo],
        facts: Facts,
        words: Words,
        valid_coupons: list,
        line_explanations: bool = True,
    ) -> None:
        self.lines = lines
        self.line_explanations = line_explanations
        self.facts = facts
        self.words = words  # the run's language and currency
        self.trace: list[TraceEntry] = []
        self.applied: list[AppliedRule] = []
        self.issued: list[str] = []
        self.used_coupons: set[str] = set()
        self._valid_coupons = valid_coupons
        self._taking_part = [line for line in lines if not line.excluded]
        self._filter_cache: dict[int, list[LineInfo]] = {}
        self._by_category: dict[str, list[LineInfo]] | None = None
        self._by_sku: dict[str, list[LineInfo]] | None = None

    def note(self, stage: str, group: str, rule: str, fired: bool, reason: Reason) -> None:
        self.trace.append(
            TraceEntry(stage=stage, group=group, rule=rule, fired=fired, reason=self.words.reason(reason))
        )

    def lines_for(self, lines: CompiledFilter | None) -> list[LineInfo]:
        """Lines a filter picks among those taking part in loyalty (excluded goods never)."""
        if lines is None:
            return self._taking_part
        found = self._filter_cache.get(lines.key)
        if found is None:
            if lines.index_decides:
                found = self._candidates(lines)
            else:
                facts, match = self.facts, lines.match
                found = [line for line in self._candidates(lines) if match(line, facts)]
            self._filter_cache[lines.key] = found
        return found

    def _candidates(self, lines: CompiledFilter) -> list[LineInfo]:
        """Narrow by category or sku through a per-basket index before running the filter."""
        if lines.categories:
            index, wanted = self._category_index(), lines.categories
        elif lines.skus:
            index, wanted = self._sku_index(), lines.skus
        else:
            return self._taking_part
        if len(wanted) == 1:  # the index lists lines in receipt order already
            (key,) = wanted
            return list(index.get(key, ()))
        picked = {line.index: line for key in wanted for line in index.get(key, ())}
        return [picked[i] for i in sorted(picked)]

    def _category_index(self) -> dict[str, list[LineInfo]]:
        if self._by_category is None:
            self._by_category = {}
            for line in self._taking_part:
                for category in line.categories:
                    self._by_category.setdefault(category, []).append(line)
        return self._by_category

    def _sku_index(self) -> dict[str, list[LineInfo]]:
        if self._by_sku is None:
            self._by_sku = {}
            for line in self._taking_part:
                self._by_sku.setdefault(line.sku, []).append(line)
        return self._by_sku

    def matcher(self, rule: CompiledRule):
        """Lines picked by a filter inside an effect (BOGO's buy/get, a set's components)."""
        return lambda lines: self.lines_for(rule.sub_filters[id(lines)])

    def use_coupons(self, rule: CompiledRule) -> None:
        if not (rule.coupon_codes or rule.coupon_series):
            return
        for coupon in self._valid_coupons:
            if coupon.code in rule.coupon_codes or (coupon.series and coupon.series in rule.coupon_series):
                self.used_coupons.add(coupon.code)

    def firing_rules(self, group: CompiledGroup, stage: str) -> list[CompiledRule]:
        """Rules of a group whose schedule, targeting and condition pass; issue-coupon rules act here."""
        reason = group.gate(self.facts)
        if reason is not None:
            for rule in group.rules:
                self.note(stage, group.code, rule.code, False, ("group", reason))
            return []
        firing = []
        for rule in group.rules:
            reason = rule.gate(self.facts)
            if reason is not None:
                self.note(stage, group.code, rule.code, False, reason)
            elif isinstance(rule.effect, IssueCoupon):
                self.issued.append(rule.effect.series)
                self.use_coupons(rule)
                self.note(stage, group.code, rule.code, True, ("issues_coupon", rule.effect.series))
                self.applied.append(
                    AppliedRule(
                        rule=rule.code,
                        name=rule.name,
                        effect=rule.kind,
                        lines=[],
                        explanation=coupon_issued(rule.name, rule.effect.series, self.words),
                    )
                )
            else:
                firing.append(rule)
        return firing
