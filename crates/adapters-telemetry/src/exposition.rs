//! A strict parser of the OpenMetrics text exposition, for tests of what `/metrics`
//! serves: the format, not substrings (every line must be a descriptor, a sample of the
//! family just described, or the final `# EOF`). Enabled by the `testing` feature.
#![allow(missing_docs, clippy::missing_errors_doc, clippy::must_use_candidate)]

use std::collections::{BTreeMap, BTreeSet};

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// One metric family: its TYPE, HELP and samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub kind: String,
    pub help: Option<String>,
    pub samples: Vec<Sample>,
}

/// A parsed exposition.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    pub families: BTreeMap<String, Family>,
}

impl Exposition {
    /// The sum of every sample called `name`.
    #[must_use]
    pub fn sum(&self, name: &str) -> f64 {
        self.families
            .values()
            .flat_map(|f| &f.samples)
            .filter(|s| s.name == name)
            .map(|s| s.value)
            .sum()
    }

    /// Every sample name (`kyzlo_ticks_total`, `kyzlo_exit_duration_seconds_bucket`, ...).
    pub fn sample_names(&self) -> BTreeSet<String> {
        self.families
            .values()
            .flat_map(|f| f.samples.iter().map(|s| s.name.clone()))
            .collect()
    }

    /// The value of the sample `name` whose labels include all of `labels`; panics unless
    /// exactly one matches.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let matching: Vec<&Sample> = self
            .families
            .values()
            .flat_map(|f| &f.samples)
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        assert_eq!(matching.len(), 1, "{name} {labels:?}: {matching:?}");
        matching[0].value
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_value(raw: &str) -> Result<f64, String> {
    match raw {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => raw.parse::<f64>().map_err(|_| format!("bad value {raw:?}")),
    }
}

/// Parses the label set after `{`, returning the labels and what follows `}`.
fn parse_labels(mut rest: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let label = &rest[..eq];
        if !valid_name(label) || label.contains(':') {
            return Err(format!("bad label name {label:?}"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        rest = &rest[end + 1..];
        if labels.insert(label.to_owned(), value).is_some() {
            return Err(format!("duplicate label {label}"));
        }
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err(format!("expected , or }} after a label: {rest:?}"));
        }
    }
}

/// Parses `name{a="b",c="d"} value [timestamp]`.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(['{', ' '])
        .ok_or_else(|| format!("no value: {line:?}"))?;
    let name = &line[..name_end];
    if !valid_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    let (labels, rest) = match line[name_end..].strip_prefix('{') {
        Some(after) => parse_labels(after)?,
        None => (BTreeMap::new(), &line[name_end..]),
    };
    let value = rest
        .strip_prefix(' ')
        .ok_or_else(|| format!("no space before the value: {line:?}"))?;
    let mut parts = value.split(' ');
    let v = parse_value(parts.next().unwrap_or(""))?;
    if let Some(ts) = parts.next() {
        ts.parse::<f64>()
            .map_err(|_| format!("bad timestamp {ts:?}"))?;
    }
    if parts.next().is_some() {
        return Err(format!("trailing tokens: {line:?}"));
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value: v,
    })
}

fn suffixes(kind: &str) -> &'static [&'static str] {
    match kind {
        "counter" => &["_total", "_created"],
        "histogram" => &["_bucket", "_sum", "_count", "_created"],
        "summary" => &["", "_sum", "_count", "_created"],
        "info" => &["_info"],
        "gauge" | "unknown" | "stateset" => &[""],
        _ => &[],
    }
}

/// Parses and validates an OpenMetrics text exposition.
pub fn parse_openmetrics(text: &str) -> Result<Exposition, String> {
    let mut out = Exposition::default();
    let mut current: Option<String> = None;
    let mut eof = false;
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}", n + 1);
        if eof {
            return Err(at("content after # EOF".into()));
        }
        if line == "# EOF" {
            eof = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (word, name, arg) = (parts.next(), parts.next(), parts.next());
            let name = name.ok_or_else(|| at("descriptor without a name".into()))?;
            if !valid_name(name) {
                return Err(at(format!("bad family name {name:?}")));
            }
            match word {
                Some("TYPE") => {
                    let kind = arg.ok_or_else(|| at("TYPE without a type".into()))?;
                    if suffixes(kind).is_empty() {
                        return Err(at(format!("unknown type {kind}")));
                    }
                    if out.families.contains_key(name) && current.as_deref() != Some(name) {
                        return Err(at(format!("family {name} described twice")));
                    }
                    out.families
                        .entry(name.to_owned())
                        .or_insert(Family {
                            kind: String::new(),
                            help: None,
                            samples: vec![],
                        })
                        .kind = kind.to_owned();
                    current = Some(name.to_owned());
                }
                Some("HELP") => {
                    if out.families.contains_key(name) && current.as_deref() != Some(name) {
                        return Err(at(format!("family {name} described twice")));
                    }
                    out.families
                        .entry(name.to_owned())
                        .or_insert(Family {
                            kind: "unknown".into(),
                            help: None,
                            samples: vec![],
                        })
                        .help = arg.map(str::to_owned);
                    current = Some(name.to_owned());
                }
                Some("UNIT") => {}
                other => return Err(at(format!("unknown descriptor {other:?}"))),
            }
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            return Err(at(format!("not a valid line: {line:?}")));
        }
        let sample = parse_sample(line).map_err(at)?;
        let family_name = current
            .as_ref()
            .ok_or_else(|| at("sample before any descriptor".into()))?;
        let family = out
            .families
            .get_mut(family_name)
            .ok_or_else(|| at("no family".into()))?;
        let suffix = sample
            .name
            .strip_prefix(family_name.as_str())
            .ok_or_else(|| at(format!("{} outside family {family_name}", sample.name)))?;
        if !suffixes(&family.kind).contains(&suffix) {
            return Err(at(format!(
                "{} is not a sample name of {} {family_name}",
                sample.name, family.kind
            )));
        }
        family.samples.push(sample);
    }
    if !eof {
        return Err("no # EOF at the end".into());
    }
    for (name, family) in &out.families {
        if family.kind == "histogram" {
            check_histogram(name, family)?;
        }
    }
    Ok(out)
}

/// Buckets cumulative, ending in +Inf, equal to _count, per label set.
fn check_histogram(name: &str, family: &Family) -> Result<(), String> {
    type LabelKey = Vec<(String, String)>;
    let mut series: BTreeMap<LabelKey, Vec<(f64, f64)>> = BTreeMap::new();
    let mut counts: BTreeMap<LabelKey, f64> = BTreeMap::new();
    for s in &family.samples {
        let mut labels = s.labels.clone();
        let le = labels.remove("le");
        let key: Vec<(String, String)> = labels.into_iter().collect();
        if s.name.ends_with("_bucket") {
            let le = parse_value(&le.ok_or(format!("{name} bucket without le"))?)?;
            series.entry(key).or_default().push((le, s.value));
        } else if s.name.ends_with("_count") {
            counts.insert(key, s.value);
        }
    }
    for (key, buckets) in series {
        for pair in buckets.windows(2) {
            if pair[1].0 <= pair[0].0 || pair[1].1 < pair[0].1 {
                return Err(format!("{name}{key:?}: buckets not cumulative: {pair:?}"));
            }
        }
        let last = buckets.last().ok_or("no buckets")?;
        if last.0 != f64::INFINITY || Some(&last.1) != counts.get(&key) {
            return Err(format!("{name}{key:?}: +Inf bucket does not equal _count"));
        }
    }
    Ok(())
}
