//! Reading a recorded price series from CSV: `ts_ms,price`, or candles
//! `ts_ms,open,high,low,close,volume` (the close is used). Timestamps are milliseconds,
//! strictly increasing and evenly spaced (the step is the first gap, at most a day).
//! Every malformed line is an error naming its line and column; nothing is skipped but
//! blank lines. Prices must be finite, within [`MIN_PRICE`, `MAX_PRICE`], and move by at
//! most [`CsvRules::max_jump`] from one row to the next; timestamps that look like seconds
//! or microseconds instead of milliseconds are refused rather than guessed at.

use std::path::Path;
use std::time::Duration;

use kyzlo_domain::Price;

use super::PricePath;
use crate::error::{CsvError, Quoted};

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Timestamp,
    Price,
    Volume,
}

const PRICE_LAYOUT: [(&str, Column); 2] = [("ts_ms", Column::Timestamp), ("price", Column::Price)];
const CANDLE_LAYOUT: [(&str, Column); 6] = [
    ("ts_ms", Column::Timestamp),
    ("open", Column::Price),
    ("high", Column::Price),
    ("low", Column::Price),
    ("close", Column::Price),
    ("volume", Column::Volume),
];

/// The smallest price accepted.
pub const MIN_PRICE: f64 = 1e-6;
/// The largest price file read (about 40 million rows).
pub const MAX_CSV_BYTES: u64 = 1 << 30;
/// The largest price accepted.
pub const MAX_PRICE: f64 = 1e9;
/// The longest step between rows: a day (daily candles).
pub const MAX_STEP_MS: u64 = 86_400_000;
/// Millisecond timestamps of real recordings are at least this (2001-09-09); smaller ones
/// from this bound down to [`SECONDS_FROM`] look like Unix seconds.
const MILLIS_FROM: u64 = 1_000_000_000_000;
/// See [`MILLIS_FROM`].
const SECONDS_FROM: u64 = 100_000_000;
/// Millisecond timestamps past this (year 5138) look like microseconds.
const MILLIS_UNTIL: u64 = 100_000_000_000_000;

/// What a series must satisfy beyond being well formed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CsvRules {
    /// The largest move from one row's price to the next, as a fraction either way (0.5:
    /// a row may be at most 50% above or below the previous one).
    pub max_jump: f64,
}

impl Default for CsvRules {
    fn default() -> Self {
        Self { max_jump: 0.5 }
    }
}

struct Layout {
    columns: &'static [(&'static str, Column)],
    /// 0-based index of the price the path uses.
    used: usize,
}

/// Parses a CSV price series; `origin` names it in errors (`origin:line:column: ...`).
///
/// # Errors
/// [`CsvError`] at the first problem: an unknown header, a missing or extra column, a
/// timestamp that is not an integer, not increasing, off the step, in seconds or
/// microseconds, or a step over a day; a price that is not a number, NaN, infinite, out
/// of range, or a jump past `rules.max_jump`; a negative volume; fewer than two rows.
pub fn parse_csv(text: &str, origin: &str, rules: CsvRules) -> Result<PricePath, CsvError> {
    let err = |line: usize, column: usize, message: String| CsvError {
        origin: origin.to_owned(),
        line,
        column,
        message,
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(err(1, 0, "empty file: expected a header".into()));
    }
    let mut lines = text.split('\n').enumerate().map(|(i, l)| {
        let l = l.strip_suffix('\r').unwrap_or(l);
        (i + 1, l)
    });
    let header = lines.next().map_or("", |(_, l)| l);
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let layout = if names == PRICE_LAYOUT.map(|(n, _)| n) {
        Layout {
            columns: &PRICE_LAYOUT,
            used: 1,
        }
    } else if names == CANDLE_LAYOUT.map(|(n, _)| n) {
        Layout {
            columns: &CANDLE_LAYOUT,
            used: 4,
        }
    } else {
        return Err(err(
            1,
            1,
            format!(
                "unknown header {}: expected `ts_ms,price` or `ts_ms,open,high,low,close,volume`",
                Quoted(header)
            ),
        ));
    };

    let mut prices = Vec::new();
    let mut first_ts: Option<u64> = None;
    let mut previous: Option<u64> = None;
    let mut step_ms: Option<u64> = None;
    let mut last_line = 1;
    for (number, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        last_line = number;
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() < layout.columns.len() {
            let (name, _) = layout.columns[fields.len()];
            return Err(err(
                number,
                fields.len() + 1,
                format!("missing column `{name}`"),
            ));
        }
        if fields.len() > layout.columns.len() {
            let extra = layout.columns.len();
            return Err(err(
                number,
                extra + 1,
                format!("extra column ({})", Quoted(fields[extra])),
            ));
        }
        let mut ts = 0;
        let mut used = None;
        for (index, (&(name, kind), field)) in layout.columns.iter().zip(&fields).enumerate() {
            let column = index + 1;
            match kind {
                Column::Timestamp => {
                    ts = field.parse::<u64>().map_err(|_| {
                        err(
                            number,
                            column,
                            format!("{name} is not an integer ({})", Quoted(field)),
                        )
                    })?;
                    if (SECONDS_FROM..MILLIS_FROM).contains(&ts) {
                        return Err(err(
                            number,
                            column,
                            format!(
                                "{name} {ts} looks like Unix seconds; ts_ms is milliseconds since 1970 (multiply by 1000)"
                            ),
                        ));
                    }
                    if ts >= MILLIS_UNTIL {
                        return Err(err(
                            number,
                            column,
                            format!(
                                "{name} {ts} looks like microseconds or later than the year 5000; ts_ms is milliseconds since 1970"
                            ),
                        ));
                    }
                }
                Column::Price => {
                    let price = parse_price(field).map_err(|m| err(number, column, m))?;
                    if index == layout.used {
                        if let Some(&before) = prices.last() {
                            check_jump(before, price, rules).map_err(|m| err(number, column, m))?;
                        }
                        used = Some(price);
                    }
                }
                Column::Volume => {
                    let volume = field.parse::<f64>().map_err(|_| {
                        err(
                            number,
                            column,
                            format!("volume is not a number ({})", Quoted(field)),
                        )
                    })?;
                    if !volume.is_finite() || volume < 0.0 {
                        return Err(err(
                            number,
                            column,
                            format!("volume must be finite and not negative ({})", Quoted(field)),
                        ));
                    }
                }
            }
        }
        if let Some(prev) = previous {
            if ts <= prev {
                return Err(err(
                    number,
                    1,
                    format!("timestamp {ts} is not after the previous one ({prev})"),
                ));
            }
            let gap = ts - prev;
            match step_ms {
                None if gap > MAX_STEP_MS => {
                    return Err(err(
                        number,
                        1,
                        format!(
                            "timestamp gap of {gap} ms: the step between rows may be at most a day ({MAX_STEP_MS} ms)"
                        ),
                    ));
                }
                None => step_ms = Some(gap),
                Some(step) if step != gap => {
                    return Err(err(
                        number,
                        1,
                        format!(
                            "timestamp gap of {gap} ms differs from the step of {step} ms set by the first two rows"
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        previous = Some(ts);
        first_ts.get_or_insert(ts);
        if let Some(price) = used {
            prices.push(price);
        }
    }
    let Some(step) = step_ms else {
        return Err(err(
            last_line + 1,
            0,
            format!(
                "{} data rows: at least two are needed to know the step",
                prices.len()
            ),
        ));
    };
    PricePath::new(Duration::from_millis(step), prices)
        .map(|p| p.with_first_ts_ms(first_ts.unwrap_or(0)))
        .map_err(|e| err(last_line, 0, e.to_string()))
}

fn parse_price(field: &str) -> Result<Price, String> {
    let value = field
        .parse::<f64>()
        .map_err(|_| format!("price is not a number ({})", Quoted(field)))?;
    if value.is_nan() {
        return Err(format!("price is NaN ({})", Quoted(field)));
    }
    if value.is_infinite() {
        return Err(format!("price is not finite ({})", Quoted(field)));
    }
    if value <= 0.0 {
        return Err(format!("price must be positive ({})", Quoted(field)));
    }
    if !(MIN_PRICE..=MAX_PRICE).contains(&value) {
        return Err(format!(
            "price {} is outside the accepted range {MIN_PRICE:e} to {MAX_PRICE:e}",
            Quoted(field)
        ));
    }
    Price::new(value).map_err(|_| format!("price must be positive ({})", Quoted(field)))
}

fn check_jump(before: Price, now: Price, rules: CsvRules) -> Result<(), String> {
    let change = now.get() / before.get() - 1.0;
    if change.abs() > rules.max_jump {
        return Err(format!(
            "price {} moves {:+.1}% from the previous row's {}: more than the {:.1}% allowed (`paper.max_price_jump_pct`)",
            now.get(),
            change * 100.0,
            before.get(),
            rules.max_jump * 100.0
        ));
    }
    Ok(())
}

/// Reads and parses a CSV price series file (see [`parse_csv`]).
///
/// # Errors
/// As [`parse_csv`], with the path as origin; a file that cannot be read (or is not
/// UTF-8) is a [`CsvError`] at line 0, column 0.
pub fn load_csv(path: &Path, rules: CsvRules) -> Result<PricePath, CsvError> {
    let origin = path.display().to_string();
    let refuse = |message: String| CsvError {
        origin: origin.clone(),
        line: 0,
        column: 0,
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| refuse(format!("cannot read: {e}")))?;
    if !meta.is_file() {
        return Err(refuse("not a regular file".into()));
    }
    if meta.len() > MAX_CSV_BYTES {
        return Err(refuse(format!(
            "{} bytes, more than the {MAX_CSV_BYTES} a price file may have",
            meta.len()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| refuse(format!("cannot read: {e}")))?;
    parse_csv(&text, &origin, rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OHLCV: &str = "ts_ms,open,high,low,close,volume";

    #[test]
    fn good_price_series_parses_with_the_first_gap_as_step() {
        let path = parse_csv(
            "ts_ms,price\n1000,10.5\n3000,11\n5000,12.25\n",
            "p.csv",
            CsvRules::default(),
        )
        .unwrap();
        assert_eq!(path.step(), Duration::from_secs(2));
        assert_eq!(path.first_ts_ms(), 1000);
        let got: Vec<f64> = path.prices().iter().map(|p| p.get()).collect();
        assert_eq!(got, [10.5, 11.0, 12.25]);
    }

    #[test]
    fn good_candles_use_the_close_and_tolerate_crlf_bom_and_blank_lines() {
        let text = format!(
            "\u{feff}{OHLCV}\r\n1621209600000,46.85,47.0,46.784,46.989,5435.365\r\n\r\n1621209660000,46.988,47.0,46.925,46.972,3012.047\r\n"
        );
        let path = parse_csv(&text, "c.csv", CsvRules::default()).unwrap();
        assert_eq!(path.step(), Duration::from_secs(60));
        let got: Vec<f64> = path.prices().iter().map(|p| p.get()).collect();
        assert_eq!(got, [46.989, 46.972]);
    }

    #[test]
    fn malformed_series_are_refused_with_line_and_column() {
        let c = |rows: &str| format!("{OHLCV}\n1000,1,1,1,1,1\n{rows}");
        // (text, line, column, message)
        let cases: Vec<(String, usize, usize, &str)> = vec![
            ("".into(), 1, 0, "empty file: expected a header"),
            (" \n\n".into(), 1, 0, "empty file"),
            (
                "ts_ms;price\n1;2".into(),
                1,
                1,
                "unknown header \"ts_ms;price\"",
            ),
            ("ts,price\n1,2".into(), 1, 1, "unknown header \"ts,price\""),
            ("ts_ms,price\n".into(), 2, 0, "0 data rows"),
            ("ts_ms,price\n1000,1\n".into(), 3, 0, "1 data rows"),
            (
                "ts_ms,price\n1000,abc".into(),
                2,
                2,
                "price is not a number (\"abc\")",
            ),
            (
                "ts_ms,price\n1000,NaN".into(),
                2,
                2,
                "price is NaN (\"NaN\")",
            ),
            (
                "ts_ms,price\n1000,inf".into(),
                2,
                2,
                "price is not finite (\"inf\")",
            ),
            (
                "ts_ms,price\n1000,0".into(),
                2,
                2,
                "price must be positive (\"0\")",
            ),
            (
                "ts_ms,price\n1000,-3".into(),
                2,
                2,
                "price must be positive (\"-3\")",
            ),
            ("ts_ms,price\n1000".into(), 2, 2, "missing column `price`"),
            ("ts_ms,price\n1000,1,2".into(), 2, 3, "extra column (\"2\")"),
            (
                "ts_ms,price\nx1,1".into(),
                2,
                1,
                "ts_ms is not an integer (\"x1\")",
            ),
            (
                "ts_ms,price\n-5,1".into(),
                2,
                1,
                "ts_ms is not an integer (\"-5\")",
            ),
            (
                "ts_ms,price\n2000,1\n2000,1".into(),
                3,
                1,
                "timestamp 2000 is not after the previous one (2000)",
            ),
            (
                "ts_ms,price\n2000,1\n1000,1".into(),
                3,
                1,
                "timestamp 1000 is not after the previous one (2000)",
            ),
            (
                "ts_ms,price\n1000,1\n2000,1\n4000,1".into(),
                4,
                1,
                "timestamp gap of 2000 ms differs from the step of 1000 ms",
            ),
            (
                c("2000,1,abc,1,1,1"),
                3,
                3,
                "price is not a number (\"abc\")",
            ),
            (c("2000,1,1,1,nan,1"), 3, 5, "price is NaN"),
            (c("2000,1,1,1,1"), 3, 6, "missing column `volume`"),
            (c("2000,1,1"), 3, 4, "missing column `low`"),
            (c("2000,1,1,1,1,1,7"), 3, 7, "extra column (\"7\")"),
            (
                c("2000,1,1,1,1,-1"),
                3,
                6,
                "volume must be finite and not negative",
            ),
            (
                c("2000,1,1,1,1,lots"),
                3,
                6,
                "volume is not a number (\"lots\")",
            ),
        ];
        for (text, line, column, message) in cases {
            let e = parse_csv(&text, "s.csv", CsvRules::default()).expect_err(&text);
            assert_eq!((e.line, e.column), (line, column), "{text:?}: {e}");
            assert!(e.message.contains(message), "{text:?}: {e}");
            assert_eq!(e.origin, "s.csv");
            assert!(
                e.to_string()
                    .starts_with(&format!("s.csv:{line}:{column}: ")),
                "{e}"
            );
        }
    }

    #[test]
    fn huge_or_hostile_fields_are_bounded_in_the_message() {
        let text = format!("ts_ms,price\n1000,{}", "x".repeat(100_000));
        let e = parse_csv(&text, "h.csv", CsvRules::default()).unwrap_err();
        assert!(e.message.len() < 700, "{}", e.message.len());
        let e = parse_csv(
            &format!("ts_ms,price\n{},1", "9".repeat(40)),
            "h.csv",
            CsvRules::default(),
        )
        .unwrap_err();
        assert_eq!((e.line, e.column), (2, 1));
    }

    #[test]
    fn implausible_series_are_refused_rather_than_guessed_at() {
        // (text, line, column, part of the message)
        let cases = [
            (
                "ts_ms,price\n1000,100\n2000,1e308\n",
                3,
                2,
                "outside the accepted range",
            ),
            ("ts_ms,price\n1000,100\n2000,151\n", 3, 2, "moves +51.0%"),
            ("ts_ms,price\n1000,100\n2000,40\n", 3, 2, "moves -60.0%"),
            (
                "ts_ms,price\n1000,1e308\n2000,1e308\n",
                2,
                2,
                "outside the accepted range",
            ),
            (
                "ts_ms,price\n1000,1e-300\n2000,1e-300\n",
                2,
                2,
                "outside the accepted range",
            ),
            (
                "ts_ms,price\n1700000000000,1\n1700100000000,1\n",
                3,
                1,
                "the step between rows may be at most a day",
            ),
            (
                "ts_ms,price\n1000,1\n1000000000001000,1\n",
                3,
                1,
                "looks like microseconds",
            ),
            (
                "ts_ms,price\n1700000000,1\n1700000001,1\n",
                2,
                1,
                "looks like Unix seconds",
            ),
            (
                "ts_ms,price\n1700000000000000,1\n1700000000001000,1\n",
                2,
                1,
                "looks like microseconds",
            ),
        ];
        for (text, line, column, part) in cases {
            let e = parse_csv(text, "j.csv", CsvRules::default()).expect_err(text);
            assert_eq!((e.line, e.column), (line, column), "{text}: {e}");
            assert!(e.message.contains(part), "{text}: {e}");
        }
        // The jump allowed is the caller's.
        let wide = CsvRules { max_jump: 2.0 };
        parse_csv("ts_ms,price\n1000,100\n2000,250\n", "j.csv", wide).unwrap();
    }

    #[test]
    fn load_csv_reads_files_and_reports_io_errors_at_line_zero() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("series.csv");
        std::fs::write(&file, "ts_ms,price\n0,1\n60000,1.25\n").unwrap();
        let path = load_csv(&file, CsvRules::default()).unwrap();
        assert_eq!(path.duration(), Duration::from_secs(120));
        let missing = dir.path().join("missing.csv");
        let e = load_csv(&missing, CsvRules::default()).unwrap_err();
        assert_eq!((e.line, e.column), (0, 0));
        assert!(e.origin.ends_with("missing.csv"));
        std::fs::write(&file, "ts_ms,price\n0,1\n60000,zz\n").unwrap();
        let e = load_csv(&file, CsvRules::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}:3:2: price is not a number (\"zz\")", file.display())
        );
    }
}
