//! CIM datetime values (DSP0004 §5.2.4): timestamps and intervals, parsed into fields.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, ErrorKind, excerpt};

/// A CIM datetime: either a point in time or a duration, both in the fixed 25-character form.
///
/// Timestamp: `yyyymmddHHMMSS.mmmmmmsUUU` where `s` is `+`/`-` and `UUU` the UTC offset in minutes.
/// Interval: `ddddddddHHMMSS.mmmmmm:000`.
/// DSP0004's asterisk wildcards (reduced precision) are not accepted: Hyper-V never writes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CimDateTime {
    /// A point in time with its UTC offset.
    Timestamp {
        /// 0..=9999
        year: u16,
        /// 1..=12
        month: u8,
        /// 1..=31, valid for the month
        day: u8,
        /// 0..=23
        hour: u8,
        /// 0..=59
        minute: u8,
        /// 0..=59
        second: u8,
        /// 0..=999_999
        microsecond: u32,
        /// -999..=999 minutes east of UTC
        utc_offset_minutes: i16,
    },
    /// A duration.
    Interval {
        /// 0..=99_999_999
        days: u32,
        /// 0..=23
        hours: u8,
        /// 0..=59
        minutes: u8,
        /// 0..=59
        seconds: u8,
        /// 0..=999_999
        microseconds: u32,
    },
}

impl CimDateTime {
    /// The timestamp for `t`, at microsecond precision, keeping its offset.
    ///
    /// Fails for years beyond 0..=9999 and offsets with seconds or beyond ±999 minutes.
    pub fn from_offset_datetime(t: time::OffsetDateTime) -> Result<Self, Error> {
        let offset = t.offset();
        let (h, m, s) = offset.as_hms();
        let minutes = i16::from(h) * 60 + i16::from(m);
        let year = u16::try_from(t.year())
            .ok()
            .filter(|y| *y <= 9999)
            .ok_or_else(|| Error::new(ErrorKind::InvalidDateTime, "year outside 0..=9999"))?;
        if s != 0 || !(-999..=999).contains(&minutes) {
            return Err(Error::new(
                ErrorKind::InvalidDateTime,
                "UTC offset not representable",
            ));
        }
        Ok(CimDateTime::Timestamp {
            year,
            month: u8::from(t.month()),
            day: t.day(),
            hour: t.hour(),
            minute: t.minute(),
            second: t.second(),
            microsecond: t.microsecond(),
            utc_offset_minutes: minutes,
        })
    }

    /// The interval for a non-negative `d`, truncated to microseconds.
    pub fn from_duration(d: std::time::Duration) -> Result<Self, Error> {
        let total = d.as_secs();
        let days = u32::try_from(total / 86_400)
            .ok()
            .filter(|d| *d <= 99_999_999)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidDateTime,
                    "interval longer than 99999999 days",
                )
            })?;
        let rem = total % 86_400;
        Ok(CimDateTime::Interval {
            days,
            hours: narrow(rem / 3600),
            minutes: narrow(rem % 3600 / 60),
            seconds: narrow(rem % 60),
            microseconds: d.subsec_micros(),
        })
    }

    /// This timestamp as a `time::OffsetDateTime`; `None` for an interval.
    pub fn to_offset_datetime(&self) -> Option<time::OffsetDateTime> {
        match *self {
            CimDateTime::Timestamp {
                year,
                month,
                day,
                hour,
                minute,
                second,
                microsecond,
                utc_offset_minutes,
            } => {
                let month = time::Month::try_from(month).ok()?;
                let date = time::Date::from_calendar_date(i32::from(year), month, day).ok()?;
                let clock = time::Time::from_hms_micro(hour, minute, second, microsecond).ok()?;
                let offset =
                    time::UtcOffset::from_whole_seconds(i32::from(utc_offset_minutes) * 60).ok()?;
                Some(time::PrimitiveDateTime::new(date, clock).assume_offset(offset))
            }
            CimDateTime::Interval { .. } => None,
        }
    }

    /// This interval as a `std::time::Duration`; `None` for a timestamp.
    pub fn to_duration(&self) -> Option<std::time::Duration> {
        match *self {
            CimDateTime::Interval {
                days,
                hours,
                minutes,
                seconds,
                microseconds,
            } => {
                let secs = u64::from(days) * 86_400
                    + u64::from(hours) * 3600
                    + u64::from(minutes) * 60
                    + u64::from(seconds);
                Some(
                    std::time::Duration::from_secs(secs)
                        + std::time::Duration::from_micros(u64::from(microseconds)),
                )
            }
            CimDateTime::Timestamp { .. } => None,
        }
    }

    /// Whether this is an interval.
    pub fn is_interval(&self) -> bool {
        matches!(self, CimDateTime::Interval { .. })
    }

    fn validate(self) -> Result<Self, &'static str> {
        match self {
            CimDateTime::Timestamp {
                year,
                month,
                day,
                hour,
                minute,
                second,
                microsecond,
                utc_offset_minutes,
            } => {
                let m = time::Month::try_from(month).map_err(|_| "month outside 01..12")?;
                time::Date::from_calendar_date(i32::from(year), m, day)
                    .map_err(|_| "day not in month")?;
                check(hour < 24, "hour outside 00..23")?;
                check(minute < 60, "minute outside 00..59")?;
                check(second < 60, "second outside 00..59")?;
                check(microsecond < 1_000_000, "microseconds outside 0..999999")?;
                check(
                    (-999..=999).contains(&utc_offset_minutes),
                    "UTC offset outside -999..999",
                )?;
            }
            CimDateTime::Interval {
                days,
                hours,
                minutes,
                seconds,
                microseconds,
            } => {
                check(days <= 99_999_999, "days outside 0..99999999")?;
                check(hours < 24, "hours outside 00..23")?;
                check(minutes < 60, "minutes outside 00..59")?;
                check(seconds < 60, "seconds outside 00..59")?;
                check(microseconds < 1_000_000, "microseconds outside 0..999999")?;
            }
        }
        Ok(self)
    }
}

fn check(ok: bool, why: &'static str) -> Result<(), &'static str> {
    if ok { Ok(()) } else { Err(why) }
}

fn narrow(v: u64) -> u8 {
    // Callers pass values already reduced below 256.
    u8::try_from(v).unwrap_or(u8::MAX)
}

impl fmt::Display for CimDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CimDateTime::Timestamp {
                year,
                month,
                day,
                hour,
                minute,
                second,
                microsecond,
                utc_offset_minutes,
            } => {
                let sign = if utc_offset_minutes < 0 { '-' } else { '+' };
                write!(
                    f,
                    "{year:04}{month:02}{day:02}{hour:02}{minute:02}{second:02}.{microsecond:06}{sign}{:03}",
                    utc_offset_minutes.unsigned_abs()
                )
            }
            CimDateTime::Interval {
                days,
                hours,
                minutes,
                seconds,
                microseconds,
            } => {
                write!(
                    f,
                    "{days:08}{hours:02}{minutes:02}{seconds:02}.{microseconds:06}:000"
                )
            }
        }
    }
}

fn digits(b: &[u8], range: std::ops::Range<usize>) -> Option<u32> {
    let part = b.get(range)?;
    part.iter().try_fold(0u32, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

fn field<T: TryFrom<u32>>(b: &[u8], range: std::ops::Range<usize>) -> Result<T, &'static str> {
    digits(b, range)
        .and_then(|v| T::try_from(v).ok())
        .ok_or("non-digit where a digit is required")
}

impl FromStr for CimDateTime {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let fail = |why: &str| {
            Error::new(
                ErrorKind::InvalidDateTime,
                format!("{why} in \"{}\"", excerpt(s)),
            )
        };
        let b = s.trim().as_bytes();
        if b.len() != 25 {
            return Err(fail("not 25 characters"));
        }
        if b.get(14) != Some(&b'.') {
            return Err(fail("no '.' at position 15"));
        }
        let parsed = match b.get(21) {
            Some(b':') => {
                if b.get(22..25) != Some(b"000") {
                    return Err(fail("interval must end in \":000\""));
                }
                CimDateTime::Interval {
                    days: field(b, 0..8).map_err(fail)?,
                    hours: field(b, 8..10).map_err(fail)?,
                    minutes: field(b, 10..12).map_err(fail)?,
                    seconds: field(b, 12..14).map_err(fail)?,
                    microseconds: field(b, 15..21).map_err(fail)?,
                }
            }
            Some(sign @ (b'+' | b'-')) => {
                let offset: i16 = field(b, 22..25).map_err(fail)?;
                CimDateTime::Timestamp {
                    year: field(b, 0..4).map_err(fail)?,
                    month: field(b, 4..6).map_err(fail)?,
                    day: field(b, 6..8).map_err(fail)?,
                    hour: field(b, 8..10).map_err(fail)?,
                    minute: field(b, 10..12).map_err(fail)?,
                    second: field(b, 12..14).map_err(fail)?,
                    microsecond: field(b, 15..21).map_err(fail)?,
                    utc_offset_minutes: if *sign == b'-' { -offset } else { offset },
                }
            }
            _ => return Err(fail("no '+', '-' or ':' at position 22")),
        };
        parsed.validate().map_err(fail)
    }
}
