//! CPU list syntax shared by `--cpus`, sysfs (`cpulist` files) and reports:
//! `0,2,4-7`.

use std::collections::BTreeSet;

/// Largest number a list may hold (Linux's NR_CPUS is at most 8192, its node
/// count 1024). It bounds a list's memory too: at most this many entries,
/// whatever the text.
pub const MAX_LIST_NUMBER: usize = 65_535;

/// Parse `0,2,4-7` into sorted, de-duplicated CPU numbers.
pub fn parse(text: &str) -> Result<Vec<usize>, String> {
    parse_list(text, "CPU")
}

/// The same list syntax for other numbers (`noun`: "NUMA node", "thread count").
pub fn parse_list(text: &str, noun: &str) -> Result<Vec<usize>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("empty {noun} list"));
    }
    let mut cpus = BTreeSet::new();
    for part in text.split(',') {
        let part = part.trim();
        if part.starts_with('-') {
            return Err(format!("{part:?} is negative in {noun} list {text:?}"));
        }
        let number = |s: &str| -> Result<usize, String> {
            let s = s.trim();
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                return s
                    .parse::<usize>()
                    .ok()
                    .filter(|&v| v <= MAX_LIST_NUMBER)
                    .ok_or_else(|| {
                        format!(
                            "{s:?} is too large for a {noun} number (at most {MAX_LIST_NUMBER}) in {noun} list {text:?}"
                        )
                    });
            }
            Err(format!(
                "{s:?} is not a {noun} number in {noun} list {text:?}"
            ))
        };
        match part.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (number(lo)?, number(hi)?);
                if lo > hi {
                    return Err(format!(
                        "range {part:?} runs backwards in {noun} list {text:?}"
                    ));
                }
                cpus.extend(lo..=hi);
            }
            None => {
                cpus.insert(number(part)?);
            }
        }
    }
    Ok(cpus.into_iter().collect())
}

/// Format sorted CPU numbers compactly: `[0,1,2,5]` → `0-2,5`.
pub fn format(cpus: &[usize]) -> String {
    let mut sorted: Vec<usize> = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_ranges() {
        assert_eq!(parse("0,2,4-7").unwrap(), vec![0, 2, 4, 5, 6, 7]);
        assert_eq!(parse(" 3 , 1-2 ,1").unwrap(), vec![1, 2, 3]);
        assert_eq!(parse("5").unwrap(), vec![5]);
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "a", "1-", "-1", "3-1", "1,,2", "0-999999999"] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn formats_round_trip() {
        for text in ["0-2,5", "0", "1,3,5", "0-63"] {
            assert_eq!(format(&parse(text).unwrap()), text);
        }
    }
}
