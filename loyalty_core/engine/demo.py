"""The demo program: Basic 3% / Silver 5% / Gold 7%, pay up to 30% with points, 1 point = 1 RUB,
plus the seed examples: welcome 500 points, x10 on the birthday, favourite categories,
happy hours, every 5th purchase, own brand."""

from __future__ import annotations

from loyalty_core.engine.conditions import Arith, Compare, Var
from loyalty_core.engine.effects import EventBonus, FixedPoints, Multiplier, PercentPoints
from loyalty_core.engine.program import CounterDef, ProgramRules, ProgramSettings, Rule, RuleGroup, TierDef
from loyalty_core.engine.targeting import HourRange, LineFilter, Schedule, Targeting


def demo_program_rules() -> ProgramRules:
    settings = ProgramSettings(
        currency="RUB",
        point_value_minor=100,
        max_redeem_share_bp=3000,
        tiers=[
            TierDef(code="basic", name="Basic", rank=1, threshold_spend_minor=0, accrual_bp=300, names={"ru": "Базовый", "en": "Basic"}),
            TierDef(code="silver", name="Silver", rank=2, threshold_spend_minor=3_000_000, accrual_bp=500, names={"ru": "Серебряный", "en": "Silver"}),
            TierDef(code="gold", name="Gold", rank=3, threshold_spend_minor=10_000_000, accrual_bp=700, names={"ru": "Золотой", "en": "Gold"}),
        ],
        default_tier="basic",
        excluded_categories=["tobacco", "alcohol"],
        counters=[CounterDef(name="month", period="month")],
        pending_days=14,
        expiry_days=365,
    )
    promos = RuleGroup(
        code="promo-points",
        name="Promotional points",
        stage="accrual",
        mode="stack",
        rules=[
            Rule(
                code="birthday-x10",
                name="Birthday x10",
                names={"ru": "День рождения ×10", "en": "Birthday ×10"},
                descriptions={"ru": "В день рождения баллы за покупку ×10 (до 5 000 баллов)", "en": "On your birthday, points for a purchase ×10 (up to 5,000 points)"},
                effect=Multiplier(factor_bp=100_000, max_points=5000),
                target=Targeting(birthday_window_days=0, registered_only=True),
            ),
            Rule(
                code="favourite-categories",
                name="Favourite categories",
                names={"ru": "Любимые категории", "en": "Favourite categories"},
                descriptions={"ru": "+5% баллами за товары любимых категорий", "en": "+5% in points on your favourite categories"},
                effect=PercentPoints(bp=500),
                lines=LineFilter(favourite_categories=True),
            ),
            Rule(
                code="happy-hours",
                name="Happy hours x2",
                names={"ru": "Счастливые часы ×2", "en": "Happy hours ×2"},
                descriptions={"ru": "Баллы ×2 с понедельника по четверг с 9 до 12", "en": "Points ×2 Monday to Thursday, 9 am to noon"},
                effect=Multiplier(factor_bp=20_000),
                schedule=Schedule(weekdays=[1, 2, 3, 4], hours=[HourRange(start=9, end=12)]),
            ),
            Rule(
                code="every-5th-purchase",
                name="Every 5th purchase this month",
                names={"ru": "Каждая 5-я покупка месяца", "en": "Every 5th purchase this month"},
                descriptions={"ru": "+100 баллов за каждую 5-ю покупку в месяце", "en": "+100 points for every 5th purchase in a month"},
                effect=FixedPoints(points=100),
                condition=Compare(
                    left=Arith(
                        fn="%", left=Arith(fn="+", left=Var(name="member.counter.month"), right=1), right=5
                    ),
                    cmp="==",
                    right=0,
                ),
            ),
            Rule(
                code="own-brand",
                name="Own brand",
                names={"ru": "Собственная марка", "en": "Own brand"},
                descriptions={"ru": "+2% баллами за товары собственной марки", "en": "+2% in points on own-brand goods"},
                effect=PercentPoints(bp=200),
                lines=LineFilter(own_brand=True),
            ),
        ],
    )
    events = RuleGroup(
        code="member-events",
        name="Member events",
        stage="event",
        rules=[Rule(code="welcome", name="Welcome bonus", effect=EventBonus(event="registered", points=500),
                    names={"ru": "Приветственный бонус", "en": "Welcome bonus"},
                    descriptions={"ru": "500 баллов за регистрацию", "en": "500 points for joining"})],
    )
    return ProgramRules(version=1, settings=settings, groups=[promos, events])
