//! Cron patterns as BullMQ's `repeat: { pattern }` accepts them (via the npm
//! package cron-parser), evaluated in UTC. Sans-IO: the caller supplies the
//! time, and no input can make this code panic or overflow.

/// Seconds in a UTC day (no leap seconds, like Unix time).
const DAY: u64 = 86_400;
/// Searches stop here so patterns that never match (`0 0 30 2 *`) end quickly.
const LIMIT: u64 = days_from_civil(2200, 1, 1) as u64 * DAY;
/// Longer patterns are refused so error messages and work stay bounded.
const MAX_LEN: usize = 256;

/// How one field is read: its name for messages, its bounds and its names.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    /// Three-letter names; the first one stands for `min`.
    names: &'static [&'static str],
    /// Whether `?` is accepted as `*` (day fields only, as in cron-parser).
    question: bool,
}

const fn field(name: &'static str, min: u32, max: u32) -> Field {
    Field { name, min, max, names: &[], question: false }
}
const SECOND: Field = field("second", 0, 59);
const MINUTE: Field = field("minute", 0, 59);
const HOUR: Field = field("hour", 0, 23);
const DOM: Field = Field { question: true, ..field("day-of-month", 1, 31) };
const MONTH: Field = Field { names: &["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], ..field("month", 1, 12) };
/// 7 is accepted as a second Sunday and folded onto 0 after parsing.
const DOW: Field = Field { names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], question: true, ..field("day-of-week", 0, 7) };

/// A parsed cron pattern: 5 fields (minute hour day-of-month month day-of-week) or 6 (second first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cron {
    /// Bit `v` is set when value `v` fires; all fields fit in 64 bits.
    seconds: u64,
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    /// Bits 0-6, Sunday = 0.
    days_of_week: u64,
    /// The field allows every value. Like cron-parser, this is judged by what
    /// the field covers (so `*/1` and `1-31` count), not by its spelling.
    dom_star: bool,
    dow_star: bool,
}

impl Cron {
    pub fn parse(pattern: &str) -> Result<Cron, String> {
        if pattern.len() > MAX_LEN {
            return Err(format!("the cron pattern is {} bytes long; at most {MAX_LEN} are allowed", pattern.len()));
        }
        let trimmed = pattern.trim();
        if trimmed.is_empty() {
            return Err("the cron pattern is empty".to_string());
        }
        let expanded = match trimmed.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            s if s.starts_with('@') => return Err(format!("unknown cron shorthand '{trimmed}'")),
            _ => trimmed,
        };
        let parts: Vec<&str> = expanded.split_whitespace().collect();
        // Five fields fire at second 0 (bit 0), as cron-parser does.
        let (seconds, [mi, h, dom, mo, dow]) = match parts.as_slice() {
            [s, a, b, c, d, e] => (parse_field(s, &SECOND)?, [a, b, c, d, e]),
            [a, b, c, d, e] => (1, [a, b, c, d, e]),
            _ => return Err(format!("the cron pattern has {} fields; 5 or 6 are expected", parts.len())),
        };
        let (minutes, hours) = (parse_field(mi, &MINUTE)?, parse_field(h, &HOUR)?);
        let (days_of_month, months) = (parse_field(dom, &DOM)?, parse_field(mo, &MONTH)?);
        let raw_dow = parse_field(dow, &DOW)?;
        let days_of_week = (raw_dow | raw_dow >> 7) & 0x7f;
        Ok(Cron { seconds, minutes, hours, days_of_month, months, days_of_week, dom_star: days_of_month == 0xffff_fffe, dow_star: days_of_week == 0x7f })
    }

    /// The first firing time strictly after `after_ms` (ms since the Unix epoch, UTC), at a whole second; None if none before year 2200.
    pub fn next_after(&self, after_ms: u64) -> Option<u64> {
        // Each step either returns or moves `t` forward to the start of the
        // next unit that could still match, so the loop runs at most a few
        // dozen times per calendar year searched.
        let mut t = after_ms / 1000 + 1;
        while t < LIMIT {
            let days = t / DAY;
            let day_start = days * DAY;
            let (y, m, d) = civil_from_days(days as i64);
            if !has(self.months, m) {
                let (ny, nm) = if m >= 12 { (y + 1, 1) } else { (y, m + 1) };
                t = days_from_civil(ny, nm, 1) as u64 * DAY;
                continue;
            }
            if !self.day_matches(days, d) {
                t = day_start + DAY;
                continue;
            }
            let sod = t - day_start;
            let (h, mi, s) = (sod / 3600, sod / 60 % 60, sod % 60);
            let hour_start = day_start + h * 3600;
            let minute_start = hour_start + mi * 60;
            t = match next_bit(self.hours, h) {
                None => day_start + DAY,
                Some(nh) if nh != h => day_start + nh * 3600,
                _ => match next_bit(self.minutes, mi) {
                    None => hour_start + 3600,
                    Some(nm) if nm != mi => hour_start + nm * 60,
                    _ => match next_bit(self.seconds, s) {
                        None => minute_start + 60,
                        Some(ns) => return Some((minute_start + ns) * 1000),
                    },
                },
            };
        }
        None
    }

    /// The standard cron rule: if either day field is unrestricted only the
    /// other one counts; if both are restricted, either may match.
    fn day_matches(&self, days: u64, dom: u32) -> bool {
        let dom_ok = has(self.days_of_month, dom);
        let dow_ok = has(self.days_of_week, ((days + 4) % 7) as u32); // 1970-01-01 was a Thursday
        if self.dom_star || self.dow_star {
            dom_ok && dow_ok
        } else {
            dom_ok || dow_ok
        }
    }
}

fn has(bits: u64, v: u32) -> bool {
    v < 64 && bits >> v & 1 == 1
}

/// The smallest set bit at or above `from`.
fn next_bit(bits: u64, from: u64) -> Option<u64> {
    let above = if from < 64 { bits >> from << from } else { 0 };
    (above != 0).then(|| u64::from(above.trailing_zeros()))
}

/// Reads one field: a comma list of `*`, `?`, `v`, `a-b`, each optionally `/step`.
fn parse_field(text: &str, f: &Field) -> Result<u64, String> {
    let mut bits = 0u64;
    for part in text.split(',') {
        if part.is_empty() {
            return Err(format!("the {} field '{text}' has an empty list item", f.name));
        }
        let (base, step) = match part.split_once('/') {
            None => (part, None),
            Some((base, s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => match s.parse::<u32>() {
                Ok(0) => return Err(format!("the {} field has a zero step in '{part}'", f.name)),
                Ok(n) => (base, Some(n)),
                Err(_) => return Err(format!("the {} field step {s} is too large", f.name)),
            },
            Some((_, s)) => return Err(format!("the {} field has an invalid step '{s}'", f.name)),
        };
        let (lo, hi) = if base == "*" || (f.question && base == "?") {
            (f.min, f.max)
        } else if let Some((a, b)) = base.split_once('-') {
            let (a, b) = (value(a, f)?, value(b, f)?);
            if a > b {
                return Err(format!("the {} field range {a}-{b} is reversed", f.name));
            }
            (a, b)
        } else {
            let a = value(base, f)?;
            // cron-parser reads `a/n` as `a-max/n`.
            (a, if step.is_some() { f.max } else { a })
        };
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v; // v <= f.max <= 59, checked by value()
            let Some(next) = v.checked_add(step.unwrap_or(1)) else { break };
            v = next;
        }
    }
    Ok(bits)
}

/// One value: a decimal number or a three-letter name, within the field's bounds.
fn value(tok: &str, f: &Field) -> Result<u32, String> {
    if let Some(i) = f.names.iter().position(|n| n.eq_ignore_ascii_case(tok)) {
        return Ok(f.min + i as u32);
    }
    if tok.is_empty() || !tok.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("the {} field has an unrecognised value '{tok}'", f.name));
    }
    match tok.parse::<u32>() {
        Ok(v) if (f.min..=f.max).contains(&v) => Ok(v),
        _ => Err(format!("the {} field {tok} is out of {}-{}", f.name, f.min, f.max)),
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant).
const fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = (if y >= 0 { y } else { y - 399 }) / 400;
    let yoe = y - era * 400;
    let mp = ((m + 9) % 12) as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a day count since 1970-01-01 (Howard Hinnant).
/// Only called with days below `LIMIT`, so nothing here can overflow.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = (if z >= 0 { z } else { z - 146_096 }) / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(y: i64, mo: u32, d: u32, h: u64, mi: u64, s: u64) -> u64 {
        (days_from_civil(y, mo, d) as u64 * DAY + h * 3600 + mi * 60 + s) * 1000
    }
    fn next(p: &str, after: u64) -> Option<u64> {
        Cron::parse(p).unwrap().next_after(after)
    }

    #[test]
    fn calendar_round_trips() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for z in (0..days_from_civil(2200, 1, 1)).step_by(17) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }

    #[test]
    fn simple_schedules() {
        let t = ms(2024, 5, 17, 10, 20, 30) + 250;
        assert_eq!(next("* * * * *", t), Some(ms(2024, 5, 17, 10, 21, 0)));
        assert_eq!(next("*/15 * * * *", t), Some(ms(2024, 5, 17, 10, 30, 0)));
        assert_eq!(next("*/15 * * * *", ms(2024, 5, 17, 10, 30, 0)), Some(ms(2024, 5, 17, 10, 45, 0)));
        assert_eq!(next("*/10 * * * * *", t), Some(ms(2024, 5, 17, 10, 20, 40)));
        assert_eq!(next("@hourly", t), Some(ms(2024, 5, 17, 11, 0, 0)));
        assert_eq!(next("  0   0 1 * *  ", ms(2024, 12, 15, 0, 0, 0)), Some(ms(2025, 1, 1, 0, 0, 0)));
    }

    #[test]
    fn weekdays_and_sundays() {
        // 2024-05-17 is a Friday: after its 09:00 the next weekday is Monday the 20th.
        assert_eq!(next("0 9 * * MON-FRI", ms(2024, 5, 17, 9, 0, 0)), Some(ms(2024, 5, 20, 9, 0, 0)));
        assert_eq!(next("0 0 * * 7", ms(2024, 5, 17, 0, 0, 0)), Some(ms(2024, 5, 19, 0, 0, 0)));
        assert_eq!(Cron::parse("0 0 * * 7"), Cron::parse("0 0 * * sun"));
        assert_eq!(Cron::parse("0 0 ? * 0"), Cron::parse("0 0 * * 0"));
        assert_eq!(Cron::parse("0 0 1 jan *"), Cron::parse("@yearly"));
    }

    #[test]
    fn both_day_fields_restricted_means_either() {
        // The 13th or any Friday: from Wed 2024-05-01 that is Fri the 3rd, then Mon the 13th.
        assert_eq!(next("0 0 13 * FRI", ms(2024, 5, 1, 0, 0, 0)), Some(ms(2024, 5, 3, 0, 0, 0)));
        assert_eq!(next("0 0 13 * FRI", ms(2024, 5, 10, 0, 0, 0)), Some(ms(2024, 5, 13, 0, 0, 0)));
    }

    #[test]
    fn leap_days_and_impossible_dates() {
        let p = "0 0 29 2 *";
        assert_eq!(next(p, ms(2023, 3, 1, 0, 0, 0)), Some(ms(2024, 2, 29, 0, 0, 0)));
        assert_eq!(next(p, ms(2096, 3, 1, 0, 0, 0)), Some(ms(2104, 2, 29, 0, 0, 0))); // 2100 is not leap
        assert_eq!(next("0 0 30 2 *", 0), None);
        assert_eq!(next("* * * * *", u64::MAX), None);
    }

    #[test]
    fn refused_patterns_name_the_problem() {
        let long = "1,".repeat(200) + " * * * *";
        let cases = [
            ("", "empty"),
            ("   ", "empty"),
            ("* * * *", "4 fields; 5 or 6"),
            ("* * * * * * *", "7 fields"),
            ("61 * * * *", "minute field 61 is out of 0-59"),
            ("* 24 * * *", "hour field 24"),
            ("* * 0 * *", "day-of-month field 0"),
            ("* * * 13 *", "month field 13"),
            ("* * * * 8", "day-of-week field 8"),
            ("60 * * * * *", "second field 60"),
            ("*/0 * * * *", "minute field has a zero step"),
            ("* 5-2 * * *", "hour field range 5-2 is reversed"),
            ("* * * FOO *", "month field has an unrecognised value 'FOO'"),
            ("* * * * MON-XYZ", "day-of-week field has an unrecognised"),
            ("? * * * *", "minute field has an unrecognised"),
            ("1,,2 * * * *", "minute field '1,,2' has an empty list item"),
            ("*/x * * * *", "invalid step 'x'"),
            ("+5 * * * *", "unrecognised value '+5'"),
            ("99999999999 * * * *", "out of 0-59"),
            ("@often", "unknown cron shorthand"),
            (long.as_str(), "at most 256"),
        ];
        for (p, want) in cases {
            let err = Cron::parse(p).unwrap_err();
            assert!(err.contains(want), "{p:?}: {err:?} lacks {want:?}");
        }
    }

    /// Tiny deterministic generator so the cross-check is reproducible.
    struct Lcg(u64);
    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % n
        }
        fn field(&mut self, min: u64, max: u64) -> String {
            let one = |r: &mut Self| {
                let (a, b) = (min + r.below(max - min + 1), min + r.below(max - min + 1));
                let (a, b) = (a.min(b), a.max(b));
                match r.below(5) {
                    0 => format!("{a}"),
                    1 => format!("{a}-{b}"),
                    2 => format!("*/{}", 1 + r.below(max)),
                    3 => format!("{a}-{b}/{}", 1 + r.below(4)),
                    _ => format!("{a}/{}", 1 + r.below(max)),
                }
            };
            match self.below(4) {
                0 => "*".to_string(),
                1 => format!("{},{}", one(self), one(self)),
                _ => one(self),
            }
        }
    }

    /// Checks each minute from scratch, skipping only days whose date cannot match.
    fn naive(c: &Cron, after_ms: u64, horizon_min: u64) -> Option<u64> {
        let start = after_ms / 60_000 + 1;
        let mut m = start;
        while m < start + horizon_min {
            let days = m / 1440;
            let (_, mo, d) = civil_from_days(days as i64);
            if !(has(c.months, mo) && c.day_matches(days, d)) {
                m = (days + 1) * 1440;
                continue;
            }
            if has(c.hours, (m / 60 % 24) as u32) && has(c.minutes, (m % 60) as u32) {
                return Some(m * 60_000);
            }
            m += 1;
        }
        None
    }

    #[test]
    fn matches_a_naive_scan() {
        let mut r = Lcg(42);
        let base = ms(2023, 1, 1, 0, 0, 0);
        let horizon = 1500 * 1440; // always spans a Feb 29 for starts in 2023-2024
        for _ in 0..3000 {
            let p = [r.field(0, 59), r.field(0, 23), r.field(1, 31), r.field(1, 12), r.field(0, 7)].join(" ");
            let c = Cron::parse(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
            let after = base + r.below(2 * 365 * DAY * 1000);
            let got = c.next_after(after);
            assert!(got.is_none_or(|g| g > after && g % 1000 == 0), "{p} at {after}: {got:?}");
            match naive(&c, after, horizon) {
                Some(want) => assert_eq!(got, Some(want), "{p} at {after}"),
                None => assert!(got.is_none_or(|g| g >= (after / 60_000 + 1 + horizon) * 60_000), "{p}"),
            }
        }
    }
}
