//! Where history rows live: SQLite (a file, the default) or PostgreSQL (a
//! fleet's shared database). One schema, the same statements where the two
//! dialects agree (`ON CONFLICT DO NOTHING` makes re-adding a report a no-op).
//!
//! The SQLite file is the one file hwprof writes outside output::write_atomic:
//! a database commits atomically through its own journal. It is opened with
//! SQLITE_OPEN_NOFOLLOW (a symlink is refused) and, under sudo, given to the
//! invoking user like every other output.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::rows::Row;
use crate::error::usage;

/// Columns after the id, in insert order.
const COLUMNS: &str = "recorded_at, run_at, commit_sha, branch, machine, scenario, metric, \
                       value, ci_lo, ci_hi, unit, source, report";

fn ddl(id: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS hwprof_results (
            id {id},
            recorded_at TEXT NOT NULL,
            run_at TEXT NOT NULL,
            commit_sha TEXT NOT NULL,
            branch TEXT NOT NULL,
            machine TEXT NOT NULL,
            scenario TEXT NOT NULL,
            metric TEXT NOT NULL,
            value DOUBLE PRECISION NOT NULL,
            ci_lo DOUBLE PRECISION,
            ci_hi DOUBLE PRECISION,
            unit TEXT NOT NULL,
            source TEXT NOT NULL,
            report TEXT NOT NULL,
            UNIQUE (commit_sha, machine, scenario, metric, run_at, report)
        );
        CREATE INDEX IF NOT EXISTS hwprof_results_series
            ON hwprof_results (machine, scenario, metric, id);"
    )
}

/// Which rows to read (None: any).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub machine: Option<String>,
    pub scenario: Option<String>,
    pub metric: Option<String>,
    pub branch: Option<String>,
}

impl Filter {
    /// `WHERE …` with numbered placeholders from `$1`, and the values.
    fn clause(&self) -> (String, Vec<String>) {
        let mut parts = Vec::new();
        let mut vals = Vec::new();
        for (col, v) in [
            ("machine", &self.machine),
            ("scenario", &self.scenario),
            ("metric", &self.metric),
            ("branch", &self.branch),
        ] {
            if let Some(v) = v {
                vals.push(v.clone());
                parts.push(format!("{col} = ${}", vals.len()));
            }
        }
        let w = if parts.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", parts.join(" AND "))
        };
        (w, vals)
    }
}

pub trait Store {
    /// Insert rows; returns how many were new.
    fn add(&mut self, rows: &[Row]) -> anyhow::Result<usize>;
    /// Rows matching `f`, in the order they were recorded.
    fn query(&mut self, f: &Filter) -> anyhow::Result<Vec<Row>>;
    /// Where the rows are (for messages): a path or the URL without password.
    fn location(&self) -> String;
}

/// A `Row` from a result row of [`select`] (the column order is select's):
/// `row_of!(r, get, ?)` for rusqlite's fallible getter, `row_of!(r, get)` for
/// postgres's.
macro_rules! row_of {
    ($r:ident, $get:ident $(, $q:tt)?) => {
        Row {
            commit: $r.$get(0)$($q)?,
            branch: $r.$get(1)$($q)?,
            machine: $r.$get(2)$($q)?,
            scenario: $r.$get(3)$($q)?,
            metric: $r.$get(4)$($q)?,
            value: $r.$get(5)$($q)?,
            ci_lo: $r.$get(6)$($q)?,
            ci_hi: $r.$get(7)$($q)?,
            unit: $r.$get(8)$($q)?,
            source: $r.$get(9)$($q)?,
            run_at: $r.$get(10)$($q)?,
            report: $r.$get(11)$($q)?,
        }
    };
}

fn select(f: &Filter) -> (String, Vec<String>) {
    let (w, vals) = f.clause();
    (
        format!(
            "SELECT commit_sha, branch, machine, scenario, metric, value, ci_lo, ci_hi, unit, source, run_at, report \
             FROM hwprof_results {w} ORDER BY id"
        ),
        vals,
    )
}

fn insert_sql() -> String {
    let ph: Vec<String> = (1..=13).map(|i| format!("${i}")).collect();
    format!(
        "INSERT INTO hwprof_results ({COLUMNS}) VALUES ({}) ON CONFLICT DO NOTHING",
        ph.join(", ")
    )
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Open the history: a `postgres://` or `postgresql://` URL, `sqlite://PATH`,
/// or a file path (default results/history.db).
pub fn open(spec: Option<&str>) -> anyhow::Result<Box<dyn Store>> {
    let spec = spec.unwrap_or(super::DEFAULT_DB);
    if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
        return Ok(Box::new(Postgres::connect(spec)?));
    }
    let path = spec.strip_prefix("sqlite://").unwrap_or(spec);
    if path.contains("://") {
        return Err(usage(format!(
            "--history {spec}: expected a file path, sqlite://PATH or postgres://…"
        )));
    }
    Ok(Box::new(Sqlite::open(Path::new(path))?))
}

pub struct Sqlite {
    conn: rusqlite::Connection,
    path: PathBuf,
}

impl Sqlite {
    pub fn open(path: &Path) -> anyhow::Result<Sqlite> {
        use rusqlite::OpenFlags;
        if path.as_os_str().is_empty() {
            return Err(usage("--history: empty path"));
        }
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        crate::output::prepare_dir("--history", dir)?;
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(usage(format!(
                "--history {}: is a symbolic link; hwprof does not write through links",
                path.display()
            )));
        }
        let conn = rusqlite::Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NOFOLLOW
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| usage(format!("--history {}: cannot open: {e}", path.display())))?;
        conn.execute_batch(&ddl("INTEGER PRIMARY KEY AUTOINCREMENT"))
            .map_err(|e| {
                usage(format!(
                    "--history {}: not a usable history database: {e}",
                    path.display()
                ))
            })?;
        if let Some((uid, gid)) = crate::output::invoking_owner() {
            // SAFETY: chown of a path we just opened; failure is reported below.
            let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
            if unsafe { libc::lchown(c.as_ptr(), uid, gid) } != 0 {
                anyhow::bail!(
                    "giving {} to uid {uid}: {}",
                    path.display(),
                    std::io::Error::last_os_error()
                );
            }
        }
        Ok(Sqlite {
            conn,
            path: path.to_path_buf(),
        })
    }
}

impl Store for Sqlite {
    fn add(&mut self, rows: &[Row]) -> anyhow::Result<usize> {
        let tx = self.conn.transaction()?;
        let mut added = 0;
        {
            let mut st = tx.prepare(&insert_sql())?;
            let at = now();
            for r in rows {
                added += st.execute(rusqlite::params![
                    at, r.run_at, r.commit, r.branch, r.machine, r.scenario, r.metric, r.value,
                    r.ci_lo, r.ci_hi, r.unit, r.source, r.report
                ])?;
            }
        }
        tx.commit()?;
        Ok(added)
    }

    fn query(&mut self, f: &Filter) -> anyhow::Result<Vec<Row>> {
        let (sql, vals) = select(f);
        let mut st = self.conn.prepare(&sql)?;
        let rows = st
            .query_map(rusqlite::params_from_iter(vals.iter()), |r| {
                Ok(row_of!(r, get, ?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }
}

pub struct Postgres {
    client: postgres::Client,
    shown: String,
}

impl Postgres {
    pub fn connect(url: &str) -> anyhow::Result<Postgres> {
        let config: postgres::Config = url
            .parse()
            .map_err(|e| usage(format!("--history: not a PostgreSQL URL: {e}")))?;
        let shown = match url.split_once('@') {
            Some((_, host)) => format!("postgres://…@{host}"),
            None => url.to_string(),
        };
        let mut client = config
            .connect(postgres::NoTls)
            .with_context(|| format!("connecting to {shown}"))?;
        client
            .batch_execute(&ddl("BIGSERIAL PRIMARY KEY"))
            .with_context(|| format!("creating the history table in {shown}"))?;
        Ok(Postgres { client, shown })
    }
}

impl Store for Postgres {
    fn add(&mut self, rows: &[Row]) -> anyhow::Result<usize> {
        let mut tx = self.client.transaction()?;
        let st = tx.prepare(&insert_sql())?;
        let at = now();
        let mut added = 0;
        for r in rows {
            added += tx.execute(
                &st,
                &[
                    &at,
                    &r.run_at,
                    &r.commit,
                    &r.branch,
                    &r.machine,
                    &r.scenario,
                    &r.metric,
                    &r.value,
                    &r.ci_lo,
                    &r.ci_hi,
                    &r.unit,
                    &r.source,
                    &r.report,
                ],
            )? as usize;
        }
        tx.commit()?;
        Ok(added)
    }

    fn query(&mut self, f: &Filter) -> anyhow::Result<Vec<Row>> {
        let (sql, vals) = select(f);
        let params: Vec<&(dyn postgres::types::ToSql + Sync)> = vals
            .iter()
            .map(|v| v as &(dyn postgres::types::ToSql + Sync))
            .collect();
        Ok(self
            .client
            .query(&sql, &params)?
            .iter()
            .map(|r| row_of!(r, get))
            .collect())
    }

    fn location(&self) -> String {
        self.shown.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(commit: &str, metric: &str, v: f64) -> Row {
        Row {
            ci_lo: Some(v - 1.0),
            ..Row::sample(commit, metric, v)
        }
    }

    #[test]
    fn sqlite_round_trip_is_idempotent_and_ordered() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("h.db");
        let mut s = Sqlite::open(&p).unwrap();
        let rows = vec![
            row("c2", "p99", 2.0),
            row("c1", "p99", 1.0),
            row("c1", "p50", 0.5),
        ];
        assert_eq!(s.add(&rows).unwrap(), 3);
        assert_eq!(
            s.add(&rows).unwrap(),
            0,
            "re-adding the same report adds nothing"
        );
        let f = Filter {
            metric: Some("p99".into()),
            ..Default::default()
        };
        let back = Sqlite::open(&p).unwrap().query(&f).unwrap();
        assert_eq!(back, rows[..2].to_vec());
        assert!(s
            .query(&Filter {
                machine: Some("x".into()),
                ..Default::default()
            })
            .unwrap()
            .is_empty());
    }

    #[test]
    fn sqlite_refuses_a_symlink() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("elsewhere.db");
        std::fs::write(&target, b"").unwrap();
        let link = d.path().join("h.db");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = Sqlite::open(&link).err().expect("refused");
        assert!(
            crate::error::is_usage(&e) && e.to_string().contains("symbolic link"),
            "{e}"
        );
    }
}
