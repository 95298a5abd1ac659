# Civil time without the port's time module: ESP32 ports count from 2000, the
# unix port from 1970, and a 32-bit port keeps only 31-bit small ints. All node
# times are therefore integer seconds since 2000-01-01 00:00 UTC ("t2k"), which
# stay small ints until 2034; the host converts with UNIX_OFFSET at the edges.

UNIX_OFFSET = 946684800  # unix time of 2000-01-01T00:00:00Z
DAY = 86400
# Việt Nam's offset (UTC+07:00) in minutes east of UTC: the commune's time
# wherever the config or the rules do not name one (node and host alike)
TZ_MIN = 420


def days_from_civil(y, m, d):
    # Howard Hinnant's algorithm, shifted to 2000-01-01 == day 0.
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 730425


def civil_from_days(z):
    z += 730425
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


def weekday(days):
    """0 = Monday ... 6 = Sunday (2000-01-01 was a Saturday)."""
    return (days + 5) % 7


def t2k(y, m, d, hh=0, mm=0, ss=0):
    return days_from_civil(y, m, d) * DAY + hh * 3600 + mm * 60 + ss


def civil(t):
    """(year, month, day, hour, minute, second, weekday) of t2k seconds."""
    days = t // DAY
    s = t - days * DAY
    y, m, d = civil_from_days(days)
    return y, m, d, s // 3600, (s // 60) % 60, s % 60, weekday(days)


def iso(t, offset_min=0):
    y, m, d, hh, mi, ss, _ = civil(t + offset_min * 60)
    if offset_min:
        sign = "+" if offset_min >= 0 else "-"
        o = abs(offset_min)
        tz = "%s%02d:%02d" % (sign, o // 60, o % 60)
    else:
        tz = "Z"
    return "%04d-%02d-%02dT%02d:%02d:%02d%s" % (y, m, d, hh, mi, ss, tz)


def parse_iso(s):
    """'YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM]' -> t2k. Raises ValueError."""
    try:
        date, _, rest = s.partition("T")
        y, m, d = [int(x) for x in date.split("-")]
        off = 0
        if rest.endswith("Z"):
            rest = rest[:-1]
        elif len(rest) > 6 and rest[-6] in "+-":
            sign = -1 if rest[-6] == "-" else 1
            off = sign * (int(rest[-5:-3]) * 60 + int(rest[-2:]))
            rest = rest[:-6]
        parts = [int(x) for x in rest.split(":")] if rest else [0, 0]
        while len(parts) < 3:
            parts.append(0)
        if not (1 <= m <= 12 and 1 <= d <= 31 and 0 <= parts[0] < 24
                and 0 <= parts[1] < 60 and 0 <= parts[2] < 60):
            raise ValueError
        return t2k(y, m, d, parts[0], parts[1], parts[2]) - off * 60
    except (ValueError, IndexError):
        raise ValueError("time must look like 2026-11-22T17:30:00+07:00")
