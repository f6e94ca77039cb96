//! One export path for every document hwprof writes (an experiment's report, a
//! suite, an attach, a c2c analysis), after hyperfine's `export/`: each format
//! is an [`Exporter`] in its own file of report/ (`json`, `markdown`, `table`,
//! `html`; plots in `plots`), and each document lists the formats it is written
//! in ([`Document`]). Commands call [`emit`] (or [`write_files`]) and nothing else.

use std::path::Path;

use serde::Serialize;

/// One output format of a document `D`.
pub trait Exporter<D> {
    /// The file it writes under `--out`; None: shown on the terminal only.
    fn file_name(&self) -> Option<&'static str>;
    fn render(&self, doc: &D) -> String;
}

/// A document and the formats it is written in.
pub trait Document: Serialize + Sized {
    /// Formats written as files under `--out` (JSON first).
    fn files() -> Vec<Box<dyn Exporter<Self>>>;
    /// The human form printed on the terminal without `--json`.
    fn terminal() -> Box<dyn Exporter<Self>>;
}

/// Every file format of `doc` into `dir`, atomically; returns the file names.
pub fn write_files<D: Document>(doc: &D, dir: &Path) -> anyhow::Result<Vec<&'static str>> {
    let mut names = Vec::new();
    for e in D::files() {
        if let Some(name) = e.file_name() {
            crate::output::write_atomic(&dir.join(name), e.render(doc).as_bytes())?;
            names.push(name);
        }
    }
    Ok(names)
}

/// Files under `out` (if given), then JSON or the terminal form on stdout.
pub fn emit<D: Document>(doc: &D, json: bool, out: Option<&Path>) -> anyhow::Result<()> {
    let written = match out {
        Some(dir) => write_files(doc, dir)?,
        None => vec![],
    };
    if json {
        println!("{}", super::json::to_string(doc));
    } else {
        print!("{}", D::terminal().render(doc));
        if let Some(dir) = out {
            let names: Vec<String> = written
                .iter()
                .map(|n| format!("{}/{n}", dir.display()))
                .collect();
            println!("\nwrote {}", names.join(", "));
        }
    }
    Ok(())
}

/// JSON (pretty, the schema in docs/report-schema.md) under the given file name.
pub struct Json(pub &'static str);

impl<D: Serialize> Exporter<D> for Json {
    fn file_name(&self) -> Option<&'static str> {
        Some(self.0)
    }
    fn render(&self, doc: &D) -> String {
        super::json::to_string(doc)
    }
}

/// Markdown under the given file name (a renderer per document in markdown.rs).
pub struct Markdown(pub &'static str);

/// The terminal table (a renderer per document in table.rs).
pub struct Table;

/// A static HTML page under the given file name (html.rs).
pub struct Html(pub &'static str);

impl Document for super::Report {
    fn files() -> Vec<Box<dyn Exporter<Self>>> {
        vec![
            Box::new(Json("report.json")),
            Box::new(Markdown("summary.md")),
        ]
    }
    fn terminal() -> Box<dyn Exporter<Self>> {
        Box::new(Table)
    }
}

impl Document for super::schema::SuiteReport {
    fn files() -> Vec<Box<dyn Exporter<Self>>> {
        vec![
            Box::new(Json("suite.json")),
            Box::new(Markdown("suite.md")),
            Box::new(Html("index.html")),
        ]
    }
    fn terminal() -> Box<dyn Exporter<Self>> {
        Box::new(Markdown("suite.md"))
    }
}

impl Document for super::schema::AttachReport {
    fn files() -> Vec<Box<dyn Exporter<Self>>> {
        vec![
            Box::new(Json("attach.json")),
            Box::new(Markdown("attach.md")),
        ]
    }
    fn terminal() -> Box<dyn Exporter<Self>> {
        Box::new(Table)
    }
}

impl Document for super::schema::soak::SoakReport {
    fn files() -> Vec<Box<dyn Exporter<Self>>> {
        vec![Box::new(Json("soak.json")), Box::new(Markdown("soak.md"))]
    }
    fn terminal() -> Box<dyn Exporter<Self>> {
        Box::new(Markdown("soak.md"))
    }
}

impl Document for super::schema::C2cReport {
    fn files() -> Vec<Box<dyn Exporter<Self>>> {
        vec![Box::new(Json("c2c.json")), Box::new(Markdown("c2c.md"))]
    }
    fn terminal() -> Box<dyn Exporter<Self>> {
        Box::new(Table)
    }
}
