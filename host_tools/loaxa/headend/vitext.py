"""A commune bulletin's text as a Vietnamese listener expects to hear it read:
numbers, times, dates, ranges and the administration's abbreviations in words
("7h30" -> "bảy giờ ba mươi", "15/12" -> "ngày mười lăm tháng mười hai",
"UBND" -> "Ủy ban nhân dân"). The numbers, units and remaining digits are
vietnormalizer's (PyPI, MIT, pure Python); this module first rewrites what it
reads wrongly or not at all in bulletins: times written 7h, 7g, 7h00 and 14:00,
day/month dates (with "ngày" already before them, mồng for days 1-10, tháng tư
for April), ranges (6-36 tháng tuổi), and the abbreviations of a commune's
offices, which it would spell letter by letter (docs/headend.md, "Text read
aloud")."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

# The offices, programmes and units a commune's bulletins name (longest first
# when one is the start of another: the pattern prefers the longer).
ABBREVIATIONS = {
    "UBND": "Ủy ban nhân dân",
    "HĐND": "Hội đồng nhân dân",
    "UBMTTQVN": "Ủy ban Mặt trận Tổ quốc Việt Nam",
    "UBMTTQ": "Ủy ban Mặt trận Tổ quốc",
    "MTTQ": "Mặt trận Tổ quốc",
    "BCH": "Ban chỉ huy",
    "BCĐ": "Ban chỉ đạo",
    "HTX": "hợp tác xã",
    "THCS": "trung học cơ sở",
    "THPT": "trung học phổ thông",
    "TH": "tiểu học",
    "MN": "mầm non",
    "CA": "Công an",
    "CSGT": "cảnh sát giao thông",
    "PCCC": "phòng cháy chữa cháy",
    "PCCCR": "phòng cháy chữa cháy rừng",
    "PCTT": "phòng chống thiên tai",
    "TKCN": "tìm kiếm cứu nạn",
    "BHYT": "bảo hiểm y tế",
    "BHXH": "bảo hiểm xã hội",
    "ATTP": "an toàn thực phẩm",
    "ATGT": "an toàn giao thông",
    "TYT": "Trạm y tế",
    "TTYT": "Trung tâm y tế",
    "KHHGĐ": "kế hoạch hóa gia đình",
    "NVQS": "nghĩa vụ quân sự",
    "QĐ": "quyết định",
    "CV": "công văn",
    "TB": "thông báo",
    "KH": "kế hoạch",
    "CT": "chỉ thị",
    "NQ": "nghị quyết",
    "HĐ": "hợp đồng",
    "ĐVT": "đơn vị tính",
    "TDP": "tổ dân phố",
    "KDC": "khu dân cư",
    "CLB": "câu lạc bộ",
    "HCCB": "Hội Cựu chiến binh",
    "HND": "Hội Nông dân",
    "HLHPN": "Hội Liên hiệp Phụ nữ",
    "LHPN": "Liên hiệp Phụ nữ",
    "ĐTN": "Đoàn Thanh niên",
    "TNCS": "thanh niên cộng sản",
    "CCB": "cựu chiến binh",
    "BQL": "Ban quản lý",
    "VH-TT": "văn hóa thông tin",
    "VHTT": "văn hóa thông tin",
    "TT-TT": "thông tin và truyền thông",
    "GPMB": "giải phóng mặt bằng",
    "NTM": "nông thôn mới",
    "ĐBSCL": "Đồng bằng sông Cửu Long",
    "TP": "thành phố",
    "TX": "thị xã",
    "TT": "thị trấn",
    "Tp.": "thành phố",
    "P.": "phường",
    "Q.": "quận",
    "Đ/c": "đồng chí",
    "đ/c": "đồng chí",
    "SĐT": "số điện thoại",
    "ĐT": "điện thoại",
    "COVID-19": "cô vít mười chín",
    "HIV/AIDS": "HIV, AIDS",
    "ha": "héc ta",
    "m2": "mét vuông",
    "m²": "mét vuông",
    "m3": "mét khối",
    "m³": "mét khối",
    "kg": "ki lô gam",
    "km": "ki lô mét",
    "km/h": "ki lô mét một giờ",
    "đ": "đồng",
    "VNĐ": "đồng",
    "VND": "đồng",
    "mm": "mi li mét",
    "°C": "độ xê",
    "oC": "độ xê",
}
_ABBR = re.compile(r"(?<![\wĐđ])(" + "|".join(
    re.escape(k) for k in sorted(ABBREVIATIONS, key=len, reverse=True)) + r")(?![\wĐđ])")
_DIGITS = "0123456789"
# 7h, 7h30, 7g, 7g30, 7 giờ 30 phút stays; 14:00, 14:30 (hours 0-24, minutes 00-59)
_TIME_H = re.compile(r"\b([01]?\d|2[0-4])\s?[hg](?:\s?([0-5]\d)(?:'|p|\s?phút)?)?(?![\w])")
_TIME_COLON = re.compile(r"\b([01]?\d|2[0-4]):([0-5]\d)\b")
# dd/mm[/yyyy] and dd-mm-yyyy, with or without "ngày" before
_DATE = re.compile(r"(\bngày\s+)?\b(0?[1-9]|[12]\d|3[01])([/.-])(0?[1-9]|1[0-2])"
                   r"(?:\3((?:19|20)\d\d))?\b(?![/.-]\d)", re.IGNORECASE)
# 25-26/12/2026, 10-15/7: two days of one month
_DAYS = re.compile(r"(\bngày\s+)?\b(0?[1-9]|[12]\d|3[01])\s?[-–]\s?(0?[1-9]|[12]\d|3[01])/"
                   r"(0?[1-9]|1[0-2])(?:/((?:19|20)\d\d))?\b", re.IGNORECASE)
# hotlines: 1900 1234, 1800.5678 read digit by digit, as the phone numbers are
_HOTLINE = re.compile(r"\b(1[89]00)[ .]?(\d{3,4})\b")
# a length after a number: 4,2 m, 30 cm
_METRE = re.compile(r"(\d)\s?(m|cm)\b(?!/)")
_MONTH_YEAR = re.compile(r"\btháng\s+(0?[1-9]|1[0-2])/((?:19|20)\d\d)\b", re.IGNORECASE)
_RANGE = re.compile(r"\b(\d+(?:[.,]\d+)?)\s?[-–]\s?(\d+(?:[.,]\d+)?)\b")
_MONTH_WORD = {4: "tư"}
# 25.000đ/kg, 3 lần/ngày: "một" (per) before the unit
_PER = re.compile(r"(\S)/(kg|km|ha|m2|lít|người|hộ|ngày|tháng|năm|tuần|giờ|lần|con|suất)\b")
  # tháng tư, never tháng bốn


def _words(n: int | str) -> str:
    """A number in words (vietnormalizer's), so that it sees no date to rewrite."""
    return " ".join(_normaliser().normalize(str(n)).split())


def _day(d: int) -> str:
    return f"mồng {_words(d)}" if d <= 10 else _words(d)


def _month(m: int) -> str:
    return _MONTH_WORD.get(m) or _words(m)


def _time(h: str, m: str | None) -> str:
    return f"{int(h)} giờ" + (f" {int(m)}" if m and int(m) else "")


def _date(mt: re.Match[str]) -> str:
    day, month, year = int(mt.group(2)), int(mt.group(4)), mt.group(5)
    if mt.group(3) == "-" and not year and not mt.group(1):
        return mt.group(0)  # 6-12 alone is a range (tháng tuổi), not the 6th of December
    s = f"{mt.group(1) or 'ngày '}{_day(day)} tháng {_month(month)}"
    return s + (f" năm {_words(year)}" if year else "")


def prepare(text: str) -> str:
    """The rewrites vietnormalizer does not make; digits are left for it."""
    text = " ".join(text.split())
    while (per := _PER.sub(lambda mt: f"{mt.group(1)} một {mt.group(2)}", text)) != text:
        text = per  # 500.000 đồng/người/tháng
    text = _HOTLINE.sub(lambda mt: " ".join(mt.group(1) + mt.group(2)), text)
    text = _METRE.sub(lambda mt: mt.group(1) + (" mét" if mt.group(2) == "m" else
                                                " xen ti mét"), text)
    text = _ABBR.sub(lambda mt: ABBREVIATIONS[mt.group(1)], text)
    text = _TIME_COLON.sub(lambda mt: _time(mt.group(1), mt.group(2)), text)
    text = _TIME_H.sub(lambda mt: _time(mt.group(1), mt.group(2)), text)
    text = _MONTH_YEAR.sub(
        lambda mt: f"tháng {_month(int(mt.group(1)))} năm {_words(mt.group(2))}", text)
    text = _DAYS.sub(lambda mt: f"{mt.group(1) or 'ngày '}{_day(int(mt.group(2)))} đến "
                     f"{_day(int(mt.group(3)))} tháng {_month(int(mt.group(4)))}"
                     + (f" năm {_words(mt.group(5))}" if mt.group(5) else ""), text)
    text = _DATE.sub(_date, text)
    text = re.sub(r"\btháng\s+0?4\b", "tháng tư", text, flags=re.IGNORECASE)
    text = _RANGE.sub(lambda mt: f"{mt.group(1)} đến {mt.group(2)}", text)
    return text


@cache
def _normaliser() -> Any:
    from vietnormalizer import VietnameseNormalizer

    return VietnameseNormalizer()


def normalise(text: str) -> str:
    """Text to read aloud: every number, time, date and known abbreviation in
    words, lower case (the synthesiser does not need capitals)."""
    return " ".join(_normaliser().normalize(prepare(text)).split())


def has_digits(text: str) -> bool:
    return any(c in _DIGITS for c in text)
