//! HTML: the suite's static index page (index.html), plots inline.

use std::fmt::Write as _;

use super::export::{Exporter, Html};
use super::schema::SuiteReport;

impl Exporter<SuiteReport> for Html {
    fn file_name(&self) -> Option<&'static str> {
        Some(self.0)
    }
    fn render(&self, s: &SuiteReport) -> String {
        suite(s)
    }
}

fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The suite's index page: every verdict, warning and plot.
pub fn suite(s: &SuiteReport) -> String {
    let mut h = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>hwprof suite</title>\n<style>\
         body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}\
         table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}\
         .ok{color:#060}.bad{color:#a00}img{max-width:100%;border:1px solid #eee;margin:6px 0}\
         .answer{font-size:1.1em;font-weight:bold}summary{cursor:pointer;color:#555}\
         </style></head><body>\n",
    );
    let _ = writeln!(
        h,
        "<h1>hwprof suite{}</h1>",
        if s.quick { " (quick)" } else { "" }
    );
    let _ = writeln!(
        h,
        "<p>Started {}, {:.0} s in all.</p>",
        esc(&s.started_at),
        s.seconds
    );
    if let Some(p) = &s.machine {
        let _ = writeln!(
            h,
            "<h2>Machine</h2><p>{}</p><p>Timer: {}. Measurement: {}.</p>",
            esc(&super::table::machine_line(p)),
            esc(&p.timer.description),
            if p.capabilities.pmu_hardware {
                "hardware counters"
            } else {
                "no hardware counters: software counters and timer"
            }
        );
        let _ = writeln!(h, "<ul>");
        if let Some(hv) = &p.virtualization {
            let _ = writeln!(
                h,
                "<li class=\"bad\">{}</li>",
                esc(&super::schema::Warning::VirtualMachine(hv.clone()).to_string())
            );
        }
        for l in &p.capabilities.lost {
            let _ = writeln!(h, "<li>{}</li>", esc(&l.line()));
        }
        let _ = writeln!(h, "</ul>");
    }
    // The answer first: one line per experiment, then what to look at; every
    // per-cell verdict stays one click away.
    let _ = writeln!(
        h,
        "<h2>Answers</h2><table><tr><th>experiment</th><th>status</th><th>answer</th><th>look at</th></tr>"
    );
    for e in &s.experiments {
        let class = if e.status.is_ok() { "ok" } else { "bad" };
        let _ = writeln!(
            h,
            "<tr><td><a href=\"#{0}\">{0}</a></td><td class=\"{class}\">{1}</td><td>{2}</td><td>{3}</td></tr>",
            esc(&e.experiment),
            esc(&e.status.to_string()),
            esc(e.headline.as_deref().unwrap_or("–")),
            match e.look_at.len() {
                0 => "–".to_string(),
                n => format!("{n} item(s)"),
            }
        );
    }
    let _ = writeln!(h, "</table>");
    for e in &s.experiments {
        let _ = writeln!(
            h,
            "<h2 id=\"{0}\">{0}</h2><p>{1}</p>",
            esc(&e.experiment),
            esc(&e.summary)
        );
        if let Some(a) = &e.headline {
            let _ = writeln!(h, "<p class=\"answer\">{}</p>", esc(a));
        }
        if !e.look_at.is_empty() {
            let _ = writeln!(h, "<h3>What to look at</h3><ol>");
            for l in &e.look_at {
                let _ = writeln!(h, "<li>{}</li>", esc(l));
            }
            let _ = writeln!(h, "</ol>");
        }
        if let Some(r) = &e.report {
            let _ = writeln!(
                h,
                "<p><a href=\"{0}\">{0}</a> · <a href=\"{1}/summary.md\">summary.md</a></p>",
                esc(r),
                esc(&e.experiment)
            );
        }
        if !e.verdicts.is_empty() {
            let _ = writeln!(
                h,
                "<details><summary>All {} verdicts, per placement group</summary><ul>",
                e.verdicts.len()
            );
            for (g, t) in &e.verdicts {
                let _ = writeln!(h, "<li><b>{}</b>: {}</li>", esc(g), esc(t));
            }
            let _ = writeln!(h, "</ul></details>");
        }
        // The guest's caveat is the machine's, said once above.
        for w in e
            .warnings
            .iter()
            .filter(|w| !matches!(w, super::schema::Warning::VirtualMachine(_)))
        {
            let _ = writeln!(h, "<p class=\"bad\">warning: {}</p>", esc(&w.to_string()));
        }
        // SVGs inline; each PNG twin is linked under its picture.
        for p in e.plots.iter().filter(|p| !p.ends_with(".png")) {
            let png = p.strip_suffix(".svg").map(|s| format!("{s}.png"));
            let link = match png.filter(|png| e.plots.contains(png)) {
                Some(png) => format!(" <a href=\"{0}\">PNG</a>", esc(&png)),
                None => String::new(),
            };
            let _ = writeln!(h, "<div><img src=\"{0}\" alt=\"{0}\">{link}</div>", esc(p));
        }
    }
    h.push_str("</body></html>\n");
    h
}
