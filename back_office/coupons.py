"""Marketing: coupon series (marketer and admin). The list with codes issued and redeemed, a new series (personal
unique codes or one shared promo code), generate N codes, the codes as CSV, and the redemptions (which code, when,
at which store, on which receipt).

Handlers parse the form and call one use-case of loyalty_core.coupons.office (the operator API's create and
generate, audited); a refused form re-renders with each message next to its field (422) and writes nothing."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.params import PathParameter, QueryParameter

from back_office import i18n, web
from back_office.marketing_forms import field_errors, program_code, programs, timezone_of
from loyalty_core.coupons import office as coupon_office
from loyalty_core.coupons import series as coupon_series
from loyalty_core.coupons.series import GenerateIn, SeriesIn
from loyalty_core.errors import Conflict, DomainError, ValidationFailed
from loyalty_core.reports.export import to_csv

MARKETING = [web.roles("marketer")]
SeriesCode = Annotated[str, PathParameter(name="code", max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
Code = Annotated[str, QueryParameter(max_length=64)]
MAX_VALUE = 1_000
SERIES_FIELDS = frozenset({"code", "name", "promo_code", "max_uses_per_code", "max_uses_per_member", "valid_from",
                           "valid_to", "program"})
GENERATE_FIELDS = frozenset({"count", "prefix"})
CREATE_DEFAULTS = {"code": "", "name": "", "kind": "personal", "promo_code": "", "max_uses_per_code": "1",
                   "max_uses_per_member": "1", "valid_from": "", "valid_to": ""}


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    out: dict[str, str] = {}
    for key, value in form.items():
        if not isinstance(value, str) or len(value) > MAX_VALUE:
            raise HTTPException(status_code=400, detail="The form is not valid: a value is too long")
        out[key] = value.strip()
    return out


def _day(text: str, zone: ZoneInfo, field: str, *, next_day: bool = False) -> dt.datetime | None:
    """A date of the form as the start of that day (or of the day after: `valid_to` is the last valid day) in the
    program's time zone."""
    if not text:
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise ValidationFailed(f"{field}: a date as YYYY-MM-DD") from None
    return dt.datetime.combine(day + dt.timedelta(days=1 if next_day else 0), dt.time(), zone)


def _series_in(values: dict[str, str], program: str, zone: ZoneInfo) -> SeriesIn:
    personal = values["kind"] != "shared"
    raw: dict[str, Any] = {"code": values["code"], "name": values["name"], "personal": personal, "program": program,
                           "promo_code": values["promo_code"] or None,
                           "valid_from": _day(values["valid_from"], zone, "valid_from"),
                           "valid_to": _day(values["valid_to"], zone, "valid_to", next_day=True)}
    for name in ("max_uses_per_code", "max_uses_per_member"):
        try:
            raw[name] = int(values[name] or "0")
        except ValueError:
            raise ValidationFailed(f"{name}: a whole number, 0 for no limit") from None
    try:
        return msgspec.convert(raw, SeriesIn)
    except msgspec.ValidationError as exc:
        raise ValidationFailed(str(exc)) from None


def _generate_in(values: dict[str, str]) -> GenerateIn:
    try:
        count = int(values.get("count", "").replace(" ", "").replace("\u00a0", ""))
    except ValueError:
        raise ValidationFailed("count: a whole number from 1 to 100 000") from None
    if not 1 <= count <= 100_000:
        raise ValidationFailed("count: from 1 to 100 000 codes at a time")
    if not re.fullmatch(r"[A-Za-z0-9]{0,12}", values.get("prefix", "")):
        raise ValidationFailed("prefix: up to 12 Latin letters and digits")
    try:
        return msgspec.convert({"count": count, "prefix": values.get("prefix", "")}, GenerateIn)
    except msgspec.ValidationError as exc:
        raise ValidationFailed(str(exc)) from None


def _translated(request: Request, errors: dict[str, str] | None) -> dict[str, str]:
    t = i18n.Formats(web.language(request)).t
    return {name: t(text) for name, text in (errors or {}).items()}


class CouponsController(Controller):
    path = web.PATH + "/coupons"
    include_in_schema = False

    @get("/", guards=MARKETING)
    async def listing(self, request: Request, program: Code = "") -> Response:
        code = await program_code(program)
        return await web.page(request, "office_coupons.html", program=code, programs=await programs(),
                              series=await coupon_series.all_series(code))

    @get("/new", guards=MARKETING)
    async def new(self, request: Request, program: Code = "") -> Response:
        return await self._editor(request, await program_code(program), dict(CREATE_DEFAULTS))

    async def _editor(self, request: Request, program: str, values: dict[str, str], *,
                      errors: dict[str, str] | None = None, status: int = 200) -> Response:
        return await web.page(request, "office_coupon_new.html", status=status, program=program, values=values,
                              errors=_translated(request, errors))

    @post("/", guards=MARKETING)
    async def create(self, request: Request) -> Response:
        form = await _form(request)
        program = await program_code(form.get("program", ""))
        values = {k: form.get(k, d) for k, d in CREATE_DEFAULTS.items()}
        try:
            spec = _series_in(values, program, ZoneInfo(await timezone_of(program)))
            made = await coupon_office.create_series(spec, web.staff_of(request).actor, web.utc_now(),
                                                     web.origin(request))
        except DomainError as exc:
            if exc.status in (403, 404):
                raise
            errors = {"code": "a series or a promo code with this code already exists"} if isinstance(exc, Conflict) \
                else field_errors(exc, "_top", SERIES_FIELDS)
            return await self._editor(request, program, values, errors=errors, status=exc.status)
        await web.flash(request, "Coupon series saved")
        return web.back_to(f"{web.PATH}/coupons/{made.code}")

    async def _series_page(self, request: Request, code: str, *, values: dict[str, str] | None = None,
                           errors: dict[str, str] | None = None, status: int = 200) -> Response:
        found = await coupon_series.series(code)
        return await web.page(request, "office_coupon_series.html", status=status, series=found,
                              values=values or {"count": "100", "prefix": ""}, errors=_translated(request, errors),
                              redemptions=await coupon_office.redemptions(code),
                              shown=coupon_office.REDEMPTIONS_SHOWN)

    @get("/{code:str}", guards=MARKETING)
    async def series(self, request: Request, code: SeriesCode) -> Response:
        return await self._series_page(request, code)

    @post("/{code:str}/generate", guards=MARKETING)
    async def generate(self, request: Request, code: SeriesCode) -> Response:
        form = await _form(request)
        values = {"count": form.get("count", ""), "prefix": form.get("prefix", "")}
        await coupon_series.series(code)  # 404 before anything else
        try:
            made = await coupon_office.generate(code, _generate_in(values), web.staff_of(request).actor,
                                                web.utc_now(), web.origin(request))
        except DomainError as exc:
            if exc.status in (403, 404):
                raise
            return await self._series_page(request, code, values=values, status=exc.status,
                                            errors=field_errors(exc, "_top", GENERATE_FIELDS))
        await web.flash(request, f"+{len(made.codes)}")
        return web.back_to(f"{web.PATH}/coupons/{code}")

    @get("/{code:str}/codes.csv", guards=MARKETING)
    async def export(self, request: Request, code: SeriesCode) -> Response:
        rows = await coupon_office.codes_for_export(code)
        lang = web.language(request)
        t = i18n.Formats(lang).t
        header = [t("Code"), t("Status"), t("Uses"), t("Member"), t("Issued"), t("Valid until")]
        body = to_csv(header, ([r.code, t(r.status), r.uses, r.membership_id, r.issued_at, r.expires_at]
                               for r in rows), lang)
        return Response(body, media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="kopilka-coupons-{code}.csv"', "Cache-Control": "no-store"})


i18n.RU.update({
    "Coupons": "Купоны", "Coupon series": "Серии купонов", "New coupon series": "Новая серия купонов",
    "No coupon series yet": "Серий купонов пока нет", "Used": "Использовано", "Valid from": "Действует с",
    "Valid until": "Действует до", "Valid until (the last day)": "Действует до (последний день)",
    "Series name": "Название серии", "Letters, digits, '.', '-' and '_'": "Буквы, цифры, «.», «-» и «_»",
    "Personal codes: unique, one per shopper": "Личные коды: уникальные, по одному на покупателя",
    "One shared promo code that every shopper types": "Один общий промокод, который вводит любой покупатель",
    "Promo code (shared series only)": "Промокод (только для общей серии)",
    "3 to 32 letters, digits, - and _": "От 3 до 32 букв, цифр, «-» и «_»", "Uses per code": "Использований на код",
    "Uses per member": "Использований на участника", "0: no limit": "0 — без ограничения", "no limit": "без ограничения",
    "Generate codes": "Выпустить коды", "How many codes": "Сколько кодов",
    "From 1 to 100 000 at a time": "От 1 до 100 000 за раз", "Prefix (optional)": "Префикс (необязательно)",
    "Up to 12 letters and digits": "До 12 букв и цифр", "Generate": "Выпустить",
    "Download the codes (CSV)": "Скачать коды (CSV)", "Redemptions": "Погашения",
    "No redemptions yet": "Погашений пока нет", "The latest": "Последние", "Member": "Участник",
    "Issued": "Выпущено", "Uses": "Использований", "Coupon series saved": "Серия купонов сохранена",
    "active": "активен", "used": "использован", "cancelled": "отменён",
    "Series of personal codes or a shared promo code; generate, download, redemptions":
        "Серии личных кодов или общий промокод; выпуск, выгрузка, погашения",
    "from 1 to 100 000 codes at a time": "от 1 до 100 000 кодов за раз",
    "a whole number from 1 to 100 000": "целое число от 1 до 100 000",
    "a whole number, 0 for no limit": "целое число, 0 — без ограничения", "a date as YYYY-MM-DD": "дата: ГГГГ-ММ-ДД",
    "must be before valid_to": "должно быть раньше даты окончания",
    "only a shared series (personal: false) has one": "промокод бывает только у общей серии",
    "a shared series needs the code shoppers will type": "для общей серии нужен код, который будут вводить покупатели",
    "a series or a promo code with this code already exists": "серия или промокод с таким кодом уже есть",
    "up to 12 Latin letters and digits": "до 12 латинских букв и цифр", "at least 0": "не меньше 0", "at least 1": "не меньше 1", "required": "обязательное поле",
    "at most 12 characters": "не больше 12 символов", "at most 1000000": "не больше 1 000 000",
    "letters, digits, '.', '-' and '_' only": "только буквы, цифры, «.», «-» и «_»",
})
