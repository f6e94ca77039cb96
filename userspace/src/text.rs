//! Plain words for human output: maps, optional values, lists and matrices as
//! a person writes them, never Rust's Debug text (`Some(25)`, `{"a": 1}`).

use std::collections::BTreeMap;
use std::fmt::Display;

/// `a 1, b 2`, or `none`.
pub fn map<V: Display>(m: &BTreeMap<String, V>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `k=v k=v` for attribute maps (hwloc's CPU kind infos).
pub fn attrs(m: &BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The value, or `?` where it is unknown.
pub fn opt<T: Display>(v: Option<T>) -> String {
    v.map_or_else(|| "?".into(), |x| x.to_string())
}

/// `1, 5, 9`.
pub fn list<T: Display>(v: impl IntoIterator<Item = T>) -> String {
    let items: Vec<String> = v.into_iter().map(|x| x.to_string()).collect();
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// `name (count), …`.
pub fn counted(v: &[(String, u64)]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    v.iter()
        .map(|(n, c)| format!("{n} ({c})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Matrix rows, one per line, indented: `    10 21`.
pub fn matrix<T: Display>(m: &[Vec<T>], indent: &str) -> String {
    m.iter()
        .map(|row| {
            format!(
                "{indent}{}",
                row.iter()
                    .map(|v| format!("{v:>4}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(duration(0.25), "0.3 s");
        assert_eq!(duration(45.0), "45 s");
        assert_eq!(duration(900.0), "15 min");
        assert_eq!(duration(7200.0), "2 h");
        assert_eq!(duration(9000.0), "2 h 30 min");
    }

    #[test]
    fn no_debug_text() {
        let mut m = BTreeMap::new();
        m.insert("cross-l3".to_string(), 2u64);
        assert_eq!(map(&m), "cross-l3 2");
        assert_eq!(opt(Some(25)), "25");
        assert_eq!(opt::<u8>(None), "?");
        assert_eq!(counted(&[("f".into(), 12)]), "f (12)");
        assert_eq!(
            matrix(&[vec![10, 21], vec![21, 10]], "  "),
            "    10   21\n    21   10"
        );
        assert_eq!(list([1, 5]), "1, 5");
    }
}

/// Seconds as a person says a run's length: `45 s`, `15 min`, `2 h 30 min`.
pub fn duration(s: f64) -> String {
    let s = s.max(0.0);
    if s < 60.0 {
        let r = (s * 10.0).round() / 10.0;
        return format!("{r} s");
    }
    let m = (s / 60.0).round() as u64;
    match (m / 60, m % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

/// Nanoseconds as milliseconds, `12.3 ms`.
pub fn ms(ns: u64) -> String {
    format!("{:.1} ms", ns as f64 / 1e6)
}
