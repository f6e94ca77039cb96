//! Reading what users hand hwprof (recordings, topology exports, scenario files)
//! with bounds: no record, file or count may grow without limit, so `/dev/zero`,
//! a FIFO or a multi-gigabyte file is refused with one line instead of filling
//! memory or hanging.

use std::io::{BufRead, Read};
use std::path::Path;

use crate::error::usage;

/// Longest line accepted in a JSON-lines recording (a recording's header holds
/// the target's /proc/PID/maps, which runs to a few MB on big processes).
pub const MAX_RECORD_BYTES: usize = 16 << 20;

/// Largest whole file read into memory (topology XML, scenario TOML).
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// `flag path: …` for messages.
fn named(flag: &str, path: &Path) -> String {
    // `--topology xml:` is followed by the path without a space.
    let sep = if flag.ends_with(':') { "" } else { " " };
    format!("{flag}{sep}{}", path.display())
}

/// Check that `path` names a regular file no larger than `max` bytes (not a
/// directory, device or FIFO, which would read forever or block). Bad input
/// otherwise, naming `flag`.
pub fn check_regular_file(flag: &str, path: &Path, max: u64) -> anyhow::Result<u64> {
    let m = std::fs::metadata(path).map_err(|e| {
        usage(format!(
            "{}: {}",
            named(flag, path),
            match e.kind() {
                std::io::ErrorKind::NotFound => "no such file".to_string(),
                _ => io_reason(&e),
            }
        ))
    })?;
    if m.is_dir() {
        return Err(usage(format!(
            "{}: is a directory, not a file",
            named(flag, path)
        )));
    }
    if !m.is_file() {
        return Err(usage(format!(
            "{}: not a regular file (a device, FIFO or socket)",
            named(flag, path)
        )));
    }
    if m.len() == 0 {
        return Err(usage(format!("{}: is empty", named(flag, path))));
    }
    if m.len() > max {
        return Err(usage(format!(
            "{}: {} bytes, more than the {} MiB hwprof reads",
            named(flag, path),
            m.len(),
            max >> 20
        )));
    }
    Ok(m.len())
}

/// A report given as its file or its `--out` directory (then `report.json`
/// in it), read and parsed as JSON: the file read and the document.
pub fn read_report_json(
    flag: &str,
    path: &Path,
) -> anyhow::Result<(std::path::PathBuf, serde_json::Value)> {
    let file = if path.is_dir() {
        path.join("report.json")
    } else {
        path.to_path_buf()
    };
    let text = read_text(flag, &file, MAX_FILE_BYTES)?;
    let v = serde_json::from_str(&text)
        .map_err(|e| usage(format!("{flag} {}: not JSON: {e}", file.display())))?;
    Ok((file, v))
}

/// Read a whole regular file of at most `max` bytes as UTF-8 text.
pub fn read_text(flag: &str, path: &Path, max: u64) -> anyhow::Result<String> {
    check_regular_file(flag, path, max)?;
    let f = std::fs::File::open(path)
        .map_err(|e| usage(format!("{}: {}", named(flag, path), io_reason(&e))))?;
    let mut buf = Vec::new();
    // The file may have grown since the check: read at most max + 1 bytes.
    f.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(|e| usage(format!("{}: {}", named(flag, path), io_reason(&e))))?;
    if buf.len() as u64 > max {
        return Err(usage(format!(
            "{}: more than the {} MiB hwprof reads",
            named(flag, path),
            max >> 20
        )));
    }
    String::from_utf8(buf).map_err(|_| usage(format!("{}: not UTF-8 text", named(flag, path))))
}

/// Lines of a stream, each at most `max` bytes; a longer one is an error (the
/// reader never buffers more than `max` + 1 bytes of one line).
pub struct BoundedLines<R> {
    reader: R,
    max: usize,
    line_no: usize,
    buf: Vec<u8>,
}

impl<R: BufRead> BoundedLines<R> {
    pub fn new(reader: R, max: usize) -> Self {
        Self {
            reader,
            max,
            line_no: 0,
            buf: Vec::new(),
        }
    }
}

/// Why a line could not be read.
#[derive(Debug)]
pub enum LineError {
    TooLong { line: usize, max: usize },
    NotUtf8 { line: usize },
    Io(std::io::Error),
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLong { line, max } => {
                write!(
                    f,
                    "line {line} is longer than {max} bytes (not a recording?)"
                )
            }
            Self::NotUtf8 { line } => write!(f, "line {line} is not UTF-8 text"),
            Self::Io(e) => write!(f, "{}", io_reason(e)),
        }
    }
}

impl<R: BufRead> Iterator for BoundedLines<R> {
    /// (1-based line number, line without its newline).
    type Item = Result<(usize, String), LineError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.buf.clear();
        let limit = self.max as u64 + 1;
        match (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut self.buf)
        {
            Ok(0) => None,
            Ok(_) => {
                self.line_no += 1;
                if self.buf.last() == Some(&b'\n') {
                    self.buf.pop();
                    if self.buf.last() == Some(&b'\r') {
                        self.buf.pop();
                    }
                } else if self.buf.len() > self.max {
                    return Some(Err(LineError::TooLong {
                        line: self.line_no,
                        max: self.max,
                    }));
                }
                match std::str::from_utf8(&self.buf) {
                    Ok(s) => Some(Ok((self.line_no, s.to_string()))),
                    Err(_) => Some(Err(LineError::NotUtf8 { line: self.line_no })),
                }
            }
            Err(e) => Some(Err(LineError::Io(e))),
        }
    }
}

/// "Permission denied (os error 13)" → "Permission denied".
pub fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// A whole number in `min..=max`, with a message that says what was wrong:
/// negative, too large, or not a number at all.
pub fn whole_number(s: &str, what: &str, min: u64, max: u64) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.strip_prefix('+').unwrap_or(t);
    if let Some(d) = t.strip_prefix('-') {
        if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "{s} is negative; expected {what} of at least {min}"
            ));
        }
    }
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?} is not a whole number (expected {what})"));
    }
    match digits.parse::<u64>() {
        Ok(v) if v > max => Err(format!("{v} is too large for {what} (at most {max})")),
        Ok(v) if v < min => Err(format!("{v} is too small for {what} (at least {min})")),
        Ok(v) => Ok(v),
        Err(_) => Err(format!("{s} is too large for {what} (at most {max})")),
    }
}

/// Longest duration any option accepts: 30 days (a soak runs for days; a
/// larger value is a typo, and 1e30 s would overflow a `Duration`).
pub const MAX_DURATION_S: f64 = 30.0 * 86_400.0;

/// The one validator for durations: plain seconds (`2.5`) or with a unit
/// (`500ms`, `30s`, `5m`, `24h`, `1d`), positive, finite and at most
/// [`MAX_DURATION_S`]. Returns seconds.
pub fn parse_seconds(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let secs = match t.parse::<f64>() {
        Ok(v) => v,
        Err(_) => {
            let split = t
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(t.len());
            let (num, unit) = t.split_at(split);
            let n: f64 = num.parse().map_err(|_| {
                format!("{s:?} is not a duration (seconds, or e.g. 500ms, 30s, 5m, 2h)")
            })?;
            let scale = match unit.trim() {
                "ms" => 1e-3,
                "s" | "sec" => 1.0,
                "m" | "min" => 60.0,
                "h" => 3600.0,
                "d" => 86_400.0,
                other => {
                    return Err(format!(
                        "{s:?}: unknown unit {other:?} (use ms, s, m, h or d)"
                    ))
                }
            };
            n * scale
        }
    };
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("{s} is not a positive duration"));
    }
    if secs > MAX_DURATION_S {
        return Err(format!(
            "{s} s is longer than the {} days hwprof accepts",
            MAX_DURATION_S / 86_400.0
        ));
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_longer_than_the_bound_is_refused_without_buffering_it() {
        // An endless stream of zero bytes, as /dev/zero gives.
        let zeros = std::io::BufReader::new(std::io::repeat(0));
        let mut lines = BoundedLines::new(zeros, 1024);
        match lines.next() {
            Some(Err(LineError::TooLong { line: 1, max: 1024 })) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lines_are_split_and_numbered() {
        let text = b"a\r\nbb\n\nccc";
        let v: Vec<_> = BoundedLines::new(&text[..], 8)
            .map(|l| l.unwrap())
            .collect();
        assert_eq!(
            v,
            vec![
                (1, "a".to_string()),
                (2, "bb".into()),
                (3, "".into()),
                (4, "ccc".into())
            ]
        );
        // Exactly at the bound is fine, one past it is not.
        assert!(BoundedLines::new(&b"12345678\n"[..], 8)
            .next()
            .unwrap()
            .is_ok());
        assert!(BoundedLines::new(&b"123456789"[..], 8)
            .next()
            .unwrap()
            .is_err());
    }

    #[test]
    fn devices_directories_and_empty_files_are_not_files() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.xml");
        std::fs::write(&empty, b"").unwrap();
        for (p, want) in [
            (Path::new("/dev/null"), "not a regular file"),
            (dir.path(), "is a directory"),
            (empty.as_path(), "is empty"),
            (Path::new("/nonexistent/x.xml"), "no such file"),
        ] {
            let e = check_regular_file("--topology xml:", p, MAX_FILE_BYTES).unwrap_err();
            assert!(crate::error::is_usage(&e));
            assert!(e.to_string().contains(want), "{p:?}: {e}");
        }
    }
}
